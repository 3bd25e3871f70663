// JsonScanner: a strict pull parser over JSON text (RFC 8259), for documents too
// large to build a DOM of cheaply. A 9.6 MB manifest of 37 k entries took ~160 ms
// through a nlohmann document; reading its entries with this scanner straight into
// their structs takes a fraction of that, and this is on the path of every version
// commit, DP sync and agent install.
//
// The caller drives it by the shape it expects (object, key, string, integer...);
// anything else is an error. Strings are unescaped (\uXXXX with surrogate pairs)
// and must be valid UTF-8 without raw control characters. Integers are JSON
// integers only: a fraction or exponent is "not an integer". Never reads outside the
// text it was given.
//
// Errors: every method returns false on malformed or unexpected input and keeps the
// first error, with its byte offset, in error(). Not thread-safe; one scanner per text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace depot::store {

class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text)
      : p_(text.data()), begin_(text.data()), end_(text.data() + text.size()) {}

  // Consumes '{' / '['.
  bool BeginObject();
  bool BeginArray();
  // Inside an object: reads the next key and its ':' into *key and returns true, or
  // consumes the closing '}' and returns false with *done set. Handles the commas.
  bool NextKey(std::string* key, bool* done);
  // Inside an array: true if another element follows (consuming the comma before it),
  // false with *done set once the closing ']' was consumed.
  bool NextElement(bool* done);

  // A string of at most `max_len` bytes (after unescaping).
  bool String(std::string* out, std::size_t max_len);
  // An integer within [lo, hi].
  bool Int(std::int64_t* out, std::int64_t lo, std::int64_t hi);
  // Skips any value (nesting bounded by `max_depth`) and returns its text.
  bool SkipValue(std::string_view* text, int max_depth = 64);
  // Only whitespace remains.
  bool AtEnd();

  bool failed() const { return !error_.empty(); }
  // "expected ',' or '}' at byte 123"; empty while nothing failed.
  const std::string& error() const { return error_; }
  // Records a caller's error at the current offset (the first one wins).
  bool Fail(std::string_view what);

 private:
  void SkipWs();
  bool Expect(char c);
  // The comma before the next item of a container, or its `close` (then *done).
  bool NextItem(char close, const char* container, bool* done);
  bool ParseString(std::string* out, std::size_t max_len);
  // ParseString's escapes: ParseEscape at the backslash, ParseUnicodeEscape after "\u".
  bool ParseEscape(std::string* out);
  bool ParseUnicodeEscape(std::string* out);

  const char* p_;
  const char* begin_;
  const char* end_;
  bool first_ = true;  // the next NextKey/NextElement is the first of its container
  std::string error_;
};

}  // namespace depot::store
