#include "store/json_scanner.h"

#include <cstring>

namespace depot::store {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(std::string* out, std::uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence at p (Unicode Table 3-7: no overlongs,
// no surrogates, nothing above U+10FFFF), or 0.
std::size_t Utf8Length(const unsigned char* p, const unsigned char* end) {
  unsigned char c = p[0];
  auto cont = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return p + i < end && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
    return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3)
    return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

}  // namespace

bool JsonScanner::Fail(std::string_view what) {
  if (error_.empty()) {
    error_ = std::string(what) + " at byte " + std::to_string(p_ - begin_);
  }
  return false;
}

void JsonScanner::SkipWs() {
  while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
}

bool JsonScanner::Expect(char c) {
  if (failed()) return false;
  SkipWs();
  if (p_ == end_ || *p_ != c) return Fail(std::string("expected '") + c + "'");
  ++p_;
  return true;
}

bool JsonScanner::BeginObject() {
  if (!Expect('{')) return false;
  first_ = true;
  return true;
}

bool JsonScanner::BeginArray() {
  if (!Expect('[')) return false;
  first_ = true;
  return true;
}

bool JsonScanner::NextItem(char close, const char* container, bool* done) {
  *done = false;
  if (failed()) return false;
  SkipWs();
  if (p_ == end_) return Fail(std::string("unexpected end inside ") + container);
  if (*p_ == close) {
    ++p_;
    first_ = false;
    *done = true;
    return false;
  }
  if (!first_) {
    if (*p_ != ',') return Fail(std::string("expected ',' or '") + close + "'");
    ++p_;
    SkipWs();
  }
  first_ = false;
  return true;
}

bool JsonScanner::NextElement(bool* done) { return NextItem(']', "an array", done); }

bool JsonScanner::NextKey(std::string* key, bool* done) {
  if (!NextItem('}', "an object", done)) return false;
  if (p_ == end_ || *p_ != '"') return Fail("expected a key");
  if (!ParseString(key, 256)) return false;
  return Expect(':');
}

bool JsonScanner::String(std::string* out, std::size_t max_len) {
  if (failed()) return false;
  SkipWs();
  if (p_ == end_ || *p_ != '"') return Fail("expected a string");
  return ParseString(out, max_len);
}

bool JsonScanner::ParseString(std::string* out, std::size_t max_len) {
  ++p_;  // the opening quote
  out->clear();
  for (;;) {
    // Runs of plain ASCII are copied at once.
    const char* run = p_;
    while (p_ < end_) {
      auto c = static_cast<unsigned char>(*p_);
      if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
      ++p_;
    }
    out->append(run, static_cast<std::size_t>(p_ - run));
    if (out->size() > max_len) return Fail("string too long");
    if (p_ == end_) return Fail("unterminated string");
    auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      ++p_;
      return true;
    }
    if (c < 0x20) return Fail("control character in a string");
    if (c >= 0x80) {
      std::size_t n = Utf8Length(reinterpret_cast<const unsigned char*>(p_),
                                 reinterpret_cast<const unsigned char*>(end_));
      if (n == 0) return Fail("invalid UTF-8 in a string");
      out->append(p_, n);
      p_ += n;
      continue;
    }
    // An escape.
    if (!ParseEscape(out)) return false;
    if (out->size() > max_len) return Fail("string too long");
  }
}

// At the backslash of an escape: appends the character the escape stands for.
bool JsonScanner::ParseEscape(std::string* out) {
  if (end_ - p_ < 2) return Fail("unterminated string");
  char e = p_[1];
  p_ += 2;
  switch (e) {
    case '"':
      out->push_back('"');
      break;
    case '\\':
      out->push_back('\\');
      break;
    case '/':
      out->push_back('/');
      break;
    case 'b':
      out->push_back('\b');
      break;
    case 'f':
      out->push_back('\f');
      break;
    case 'n':
      out->push_back('\n');
      break;
    case 'r':
      out->push_back('\r');
      break;
    case 't':
      out->push_back('\t');
      break;
    case 'u':
      return ParseUnicodeEscape(out);
    default:
      return Fail("bad escape in a string");
  }
  return true;
}

// After the "\u" of an escape: appends the code point of its four hex digits (and of the
// low surrogate's escape after a high one).
bool JsonScanner::ParseUnicodeEscape(std::string* out) {
  auto hex4 = [&](std::uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = HexValue(p_[i]);
      if (h < 0) return false;
      *v = (*v << 4) | static_cast<std::uint32_t>(h);
    }
    p_ += 4;
    return true;
  };
  std::uint32_t cp;
  if (!hex4(&cp)) return Fail("bad \\u escape");
  if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("lone low surrogate in a \\u escape");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    std::uint32_t lo;
    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
      return Fail("lone high surrogate in a \\u escape");
    p_ += 2;
    if (!hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return Fail("bad surrogate pair in a \\u escape");
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  AppendUtf8(out, cp);
  return true;
}

bool JsonScanner::Int(std::int64_t* out, std::int64_t lo, std::int64_t hi) {
  if (failed()) return false;
  SkipWs();
  const char* start = p_;
  bool negative = p_ < end_ && *p_ == '-';
  if (negative) ++p_;
  if (p_ == end_ || *p_ < '0' || *p_ > '9') {
    p_ = start;
    return Fail("expected an integer");
  }
  if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9')
    return Fail("leading zero in a number");
  std::uint64_t v = 0;
  bool overflow = false;
  while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
    auto d = static_cast<std::uint64_t>(*p_ - '0');
    if (v > (UINT64_MAX - d) / 10) overflow = true;
    v = v * 10 + d;
    ++p_;
  }
  if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return Fail("not an integer");
  // Every range callers use fits in int64; anything larger is out of it.
  if (overflow || v > static_cast<std::uint64_t>(INT64_MAX)) return Fail("integer out of range");
  auto s = negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  if (s < lo || s > hi) return Fail("integer out of range");
  *out = s;
  return true;
}

bool JsonScanner::SkipValue(std::string_view* text, int max_depth) {
  if (failed()) return false;
  SkipWs();
  const char* start = p_;
  if (p_ == end_) return Fail("expected a value");
  char c = *p_;
  bool done = false;
  std::string scratch;
  if (c == '{') {
    if (max_depth <= 0) return Fail("nested too deeply");
    BeginObject();
    while (NextKey(&scratch, &done)) {
      std::string_view ignored;
      if (!SkipValue(&ignored, max_depth - 1)) return false;
    }
    if (!done) return false;
  } else if (c == '[') {
    if (max_depth <= 0) return Fail("nested too deeply");
    BeginArray();
    while (NextElement(&done)) {
      std::string_view ignored;
      if (!SkipValue(&ignored, max_depth - 1)) return false;
    }
    if (!done) return false;
  } else if (c == '"') {
    if (!ParseString(&scratch, SIZE_MAX)) return false;
  } else if (c == 't' || c == 'f' || c == 'n') {
    std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return Fail("bad literal");
    }
    p_ += word.size();
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    // number = [ minus ] int [ frac ] [ exp ]
    if (*p_ == '-') ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return Fail("bad number");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return Fail("bad number");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return Fail("bad number");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
  } else {
    return Fail("expected a value");
  }
  first_ = false;
  *text = std::string_view(start, static_cast<std::size_t>(p_ - start));
  return true;
}

bool JsonScanner::AtEnd() {
  if (failed()) return false;
  SkipWs();
  if (p_ != end_) return Fail("unexpected text after the document");
  return true;
}

}  // namespace depot::store
