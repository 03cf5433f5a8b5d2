#include "proxy/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace stampd::proxy {

std::atomic<LogLevel> Logger::level_{LogLevel::Info};
std::atomic<LogFormat> Logger::format_{LogFormat::Text};

namespace {

const char* level_name(LogLevel level) {
  switch (level) {
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

void json_string(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
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
    line += level_name(level);
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
    line += level_name(level);
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

}  // namespace stampd::proxy
