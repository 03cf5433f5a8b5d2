// log.h: one event per line on stderr, as key=value text or JSON, each with
// the session and message id where there is one. Only proxy/ and cmd/ log. Callers
// never pass AUTH data, passwords or message bodies.
#pragma once

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stampd::obs {

enum class LogFormat { Text, Json };
enum class LogLevel { Debug, Info, Warning, Error };
const char* to_string(LogLevel level);

using LogField = std::pair<std::string_view, std::string_view>;

class Logger {
 public:
  // configure sets level and format; safe to call while others log.
  static void configure(LogLevel level, LogFormat format);
  static bool enabled(LogLevel level);
  // write emits one line for event with fields in order.
  static void write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);
  static void write(LogLevel level, std::string_view event, const std::vector<LogField>& fields);

 private:
  static std::atomic<LogLevel> level_;
  static std::atomic<LogFormat> format_;
};

inline void log_debug(std::string_view event, std::initializer_list<LogField> fields) {
  if (Logger::enabled(LogLevel::Debug)) Logger::write(LogLevel::Debug, event, fields);
}
inline void log_info(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::write(LogLevel::Info, event, fields);
}
inline void log_warning(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::write(LogLevel::Warning, event, fields);
}
inline void log_error(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::write(LogLevel::Error, event, fields);
}

}  // namespace stampd::obs
