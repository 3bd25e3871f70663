// Status and Result<T>: depot's errors as values.
//
// Every fallible function returns a Status or a Result<T>; no exception crosses a
// component boundary. A Status carries a Code (what kind of failure, for callers to
// branch on) and a message (for the operator: it names the thing at fault and, where
// possible, the fix). Context is prepended as the error travels up:
//   "repo add: snapshot: src/a.txt: file changed while being read".
//
// "Missing" is not "failed": NotFound is a normal answer (an absent chunk, a 404) and
// callers are expected to test for it with IsNotFound().
//
// Thread safety: values; no shared state.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace depot::core {

enum class Code : unsigned char {
  kOk = 0,
  kNotFound,          // the thing asked for does not exist (not an error by itself)
  kInvalidArgument,   // the caller's input is wrong: bad path, malformed JSON, bad flag
  kCorruption,        // stored or received bytes fail verification (hash, signature, length)
  kIOError,           // the disk or the OS failed: ENOSPC, EIO, a file that kept changing
  kUnavailable,       // a peer could not be reached or answered with a server error; retry later
  kPermissionDenied,  // credentials, file permissions, an expired or untrusted signature
};

// Returns the stable name of a code ("NotFound", ...), used in JSON output and logs.
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status PermissionDenied(std::string msg) {
    return Status(Code::kPermissionDenied, std::move(msg));
  }

  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }
  bool IsPermissionDenied() const { return code_ == Code::kPermissionDenied; }

  // Returns the same error with "context: " prepended to the message. OK stays OK.
  Status WithContext(std::string_view context) const&;
  Status WithContext(std::string_view context) &&;

  // "NotFound: <message>", or "OK".
  std::string ToString() const;

  // Marks a status as deliberately ignored (best-effort cleanup paths).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, Status>, "use Status directly");

 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit by design, like absl::StatusOr.
  Result(Status status) : v_(std::move(status)) {
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK Status");
    if (std::get<Status>(v_).ok()) {
      v_ = Status(Code::kInvalidArgument, "internal: Result built from OK status");
    }
  }
  template <typename U = T,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::remove_cvref_t<U>, Status> &&
                                        !std::is_same_v<std::remove_cvref_t<U>, Result>>>
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(U&& value) : v_(std::in_place_index<1>, std::forward<U>(value)) {}

  bool ok() const { return v_.index() == 1; }
  const Status& status() const& {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<0>(v_);
  }
  Status status() && { return ok() ? Status() : std::move(std::get<0>(v_)); }

  T& value() & { return std::get<1>(v_); }
  const T& value() const& { return std::get<1>(v_); }
  // By value, so `for (auto& x : *F())` does not dangle.
  T value() && { return std::get<1>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Same as Status::WithContext; keeps a value untouched.
  Result WithContext(std::string_view context) && {
    if (ok()) return std::move(*this);
    return Result(std::get<0>(std::move(v_)).WithContext(context));
  }

 private:
  std::variant<Status, T> v_;
};

}  // namespace depot::core

#define DEPOT_CONCAT_INNER_(a, b) a##b
#define DEPOT_CONCAT_(a, b) DEPOT_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define DEPOT_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::depot::core::Status depot_status_ = (expr);  \
    if (!depot_status_.ok()) return depot_status_; \
  } while (0)

// Evaluates `rexpr` (a Result<T>); on error returns its Status, else moves the value
// into `lhs` (which may be a declaration: DEPOT_ASSIGN_OR_RETURN(auto x, F());).
#define DEPOT_ASSIGN_OR_RETURN(lhs, rexpr) \
  DEPOT_ASSIGN_OR_RETURN_IMPL_(DEPOT_CONCAT_(depot_result_, __LINE__), lhs, rexpr)
#define DEPOT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()
