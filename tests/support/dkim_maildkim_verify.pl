#!/usr/bin/perl
# dkim_maildkim_verify.pl: verify a message offline with Mail::DKIM, for the
# interop harness (dkim_verifiers.py). Key records come from a file instead
# of DNS: Mail::DKIM::DNS::query is replaced before verifying.
#
#   perl dkim_maildkim_verify.pl MESSAGE RECORDS
#
# RECORDS: one "selector._domainkey.domain<TAB>TXT value" per line.
# Output: one line per signature, tab-separated:
#   result  domain  selector  algorithm  b-prefix  detail
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my ($message_file, $records_file) = @ARGV;
die "usage: $0 MESSAGE RECORDS\n" unless defined $records_file;

my %records;
open(my $rf, '<', $records_file) or die "$records_file: $!\n";
while (my $line = <$rf>) {
    chomp $line;
    next if $line eq '';
    my ($name, $txt) = split /\t/, $line, 2;
    $name = lc $name;
    $name =~ s/\.$//;
    $records{$name} = $txt;
}
close $rf;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($domain, $type) = @_;
        my $name = lc $domain;
        $name =~ s/\.$//;
        my $txt = $records{$name};
        if (!defined $txt || uc($type) ne 'TXT') {
            $@ = 'NXDOMAIN';
            return;
        }
        # A TXT character-string holds at most 255 bytes.
        my @strings = ($txt =~ /(.{1,255})/gs);
        $@ = 'NOERROR';
        return (Net::DNS::RR->new(name => $domain, type => 'TXT', txtdata => [@strings]));
    };
}

my $dkim = Mail::DKIM::Verifier->new();
open(my $mf, '<:raw', $message_file) or die "$message_file: $!\n";
while (read($mf, my $buf, 65536)) {
    $dkim->PRINT($buf);
}
close $mf;
$dkim->CLOSE;

foreach my $sig ($dkim->signatures) {
    my $b = $sig->data // '';
    $b =~ s/\s+//g;
    my $detail = $sig->result_detail // '';
    $detail =~ s/[\t\r\n]+/ /g;
    print join("\t", $sig->result // 'none', $sig->domain // '', $sig->selector // '',
               $sig->algorithm // '', substr($b, 0, 8), $detail), "\n";
}
