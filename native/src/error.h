// Engine errors: one exception type carrying a stable code, thrown by the core and turned into a
// JS Error with a `code` property by the binding. Messages name the input that was wrong.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

namespace canopy {

enum class ErrorCode { InvalidArgument, OutOfRange, BadState, IoError, BadFile, QueueFull };

inline const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::OutOfRange: return "OUT_OF_RANGE";
    case ErrorCode::BadState: return "BAD_STATE";
    case ErrorCode::IoError: return "IO_ERROR";
    case ErrorCode::BadFile: return "BAD_FILE";
    case ErrorCode::QueueFull: return "QUEUE_FULL";
  }
  return "UNKNOWN";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// An I/O failure naming the file and the system's reason, e.g. "cannot open index file '/x.ann': No such file or directory".
inline std::string errno_message(const std::string& what, const std::string& path, int err) {
  return what + " '" + path + "': " + std::strerror(err);
}

}  // namespace canopy
