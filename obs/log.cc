#include "obs/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace stampd::obs {

std::atomic<LogLevel> Logger::level_{LogLevel::Info};
std::atomic<LogFormat> Logger::format_{LogFormat::Text};

namespace {

void timestamp(std::string& out) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out += buf;
}

// Values come partly from clients (HELO names, addresses): escape anything
// that could forge a log line or a field.
void text_value(std::string& out, std::string_view v) {
  bool quote = v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) quote = true;
  }
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

// utf8_length returns the length of the well-formed UTF-8 sequence at the
// start of v (RFC 3629: no overlongs, surrogates or code points past
// U+10FFFF), or 0 when there is none.
std::size_t utf8_length(std::string_view v) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(v[i]); };
  const auto cont = [&](std::size_t i) { return i < v.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F)) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F)) return 0;
    return 4;
  }
  return 0;
}

// JSON text is UTF-8 (RFC 8259 §8.1), but clients send any bytes: each byte
// that is not part of well-formed UTF-8 becomes U+FFFD.
void json_string(std::string& out, std::string_view v) {
  out += '"';
  for (std::size_t i = 0; i < v.size();) {
    const char c = v[i];
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else if (u >= 0x80) {
      const std::size_t n = utf8_length(v.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out += v.substr(i, n);
        i += n;
      }
      continue;
    } else {
      out += c;
    }
    ++i;
  }
  out += '"';
}

template <class Fields>
void emit(LogLevel level, LogFormat format, std::string_view event, const Fields& fields) {
  std::string line;
  line.reserve(256);
  if (format == LogFormat::Json) {
    line += "{\"ts\":\"";
    timestamp(line);
    line += "\",\"level\":\"";
    line += to_string(level);
    line += "\",\"event\":";
    json_string(line, event);
    for (const auto& [k, v] : fields) {
      line += ',';
      json_string(line, k);
      line += ':';
      json_string(line, v);
    }
    line += "}\n";
  } else {
    timestamp(line);
    line += ' ';
    line += to_string(level);
    line += " event=";
    line += event;
    for (const auto& [k, v] : fields) {
      line += ' ';
      line += k;
      line += '=';
      text_value(line, v);
    }
    line += '\n';
  }
  // One write per line keeps lines whole when several threads log.
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

void Logger::configure(LogLevel level, LogFormat format) {
  level_.store(level);
  format_.store(format);
}

bool Logger::enabled(LogLevel level) { return level >= level_.load(std::memory_order_relaxed); }

void Logger::write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!enabled(level)) return;
  emit(level, format_.load(std::memory_order_relaxed), event, fields);
}

void Logger::write(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  if (!enabled(level)) return;
  emit(level, format_.load(std::memory_order_relaxed), event, fields);
}

const char* to_string(LogLevel v) {
  switch (v) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warning:
      return "warning";
    case LogLevel::Error:
      return "error";
  }
  return "?";
}

}  // namespace stampd::obs
