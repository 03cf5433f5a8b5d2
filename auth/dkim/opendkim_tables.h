// dkim_opendkim_tables.h: reads OpenDKIM KeyTable and SigningTable files as
// the classic Postfix+OpenDKIM how-to writes them, into stampd's key and rule
// model (dkim_keyring.h, dkim_signing_rules.h), so they can be used as they
// are. Errors are "file:line: reason".
//
// File syntax (OpenDKIM flat files): one entry per line, the key up to the
// first whitespace, the value after it; '#' starts a comment; blank lines are
// skipped. As an extension, a line ending in '\' continues on the next one
// (OpenDKIM has no continuation lines, so no file it reads changes meaning).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/keyring.h"
#include "auth/dkim/signing_rules.h"
#include "net/result.h"

namespace stampd::auth {

// parse_opendkim_key_table reads "name domain:selector:/path/to/key" lines.
// A key path starting with "/", "./" or "../" is a file (relative ones are
// taken from base_dir, the table's directory, so the table can move with its
// keys); anything else would be inline key data for OpenDKIM, which is not
// supported (error). A '%' domain (OpenDKIM: the sender's domain) is not
// supported either (error).
net::Result<std::vector<KeySpec>> parse_opendkim_key_table(std::string_view text,
                                                           std::string_view file_name,
                                                           std::string_view base_dir);

// parse_opendkim_signing_table reads "pattern keyname[:signer]" lines.
// refile (OpenDKIM "refile:"): patterns are wildcards over the whole From
// address, checked in file order, first match wins; lines with the same
// pattern are merged into one rule with several keys (what OpenDKIM does with
// MultipleSignatures yes). Plain tables (OpenDKIM "file:"): keys are looked up
// as OpenDKIM does, "user@host", then "host", then "user@.parent" and
// ".parent" for each parent domain nearest first, then "user@*", then "*";
// the rules come out ordered so that first-match gives that precedence.
// Rules get on_error fail-closed.
net::Result<std::vector<SigningRule>> parse_opendkim_signing_table(std::string_view text,
                                                                   std::string_view file_name,
                                                                   bool refile);

// load_opendkim_key_table reads a KeyTable named as in opendkim.conf
// ("file:PATH", "refile:PATH" or a plain PATH).
net::Result<std::vector<KeySpec>> load_opendkim_key_table(std::string_view spec);
// load_opendkim_signing_table reads a SigningTable: "refile:PATH" is a
// wildcard table, "file:PATH" or a plain PATH a lookup table.
net::Result<std::vector<SigningRule>> load_opendkim_signing_table(std::string_view spec);

}  // namespace stampd::auth
