#include "site/rules.h"

#include <cctype>

#include "core/net.h"

namespace depot::site {

using core::Status;

struct Rule::Node {
  enum Kind { kAnd, kOr, kNot, kEq, kNe, kInList, kInCidr } kind;
  std::vector<std::shared_ptr<const Node>> children;
  std::string name;
  std::vector<std::string> values;
  core::Cidr cidr;
};

namespace {

constexpr std::size_t kMaxLength = 4096;
constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  core::Result<std::shared_ptr<const Rule::Node>> Parse() {
    auto n = Expr(0);
    if (!n.ok()) return n;
    Skip();
    if (pos_ != s_.size()) return Error("unexpected `" + std::string(s_.substr(pos_, 12)) + "`");
    return n;
  }

 private:
  using NodePtr = std::shared_ptr<const Rule::Node>;

  Status Error(const std::string& what) {
    return Status::InvalidArgument("rule, at character " + std::to_string(pos_ + 1) + ": " + what);
  }
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Keyword(std::string_view kw) {
    Skip();
    if (s_.substr(pos_, kw.size()) != kw) return false;
    std::size_t end = pos_ + kw.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) {
      return false;
    }
    pos_ = end;
    return true;
  }
  bool Symbol(std::string_view sym) {
    Skip();
    if (s_.substr(pos_, sym.size()) != sym) return false;
    pos_ += sym.size();
    return true;
  }

  core::Result<NodePtr> Expr(int depth) {
    if (depth > kMaxDepth) return Error("rule nests too deeply");
    auto left = Term(depth);
    if (!left.ok()) return left;
    NodePtr n = *left;
    while (Keyword("or")) {
      auto right = Term(depth);
      if (!right.ok()) return right;
      auto node = std::make_shared<Rule::Node>();
      node->kind = Rule::Node::kOr;
      node->children = {n, *right};
      n = node;
    }
    return n;
  }

  core::Result<NodePtr> Term(int depth) {
    auto left = Factor(depth);
    if (!left.ok()) return left;
    NodePtr n = *left;
    while (Keyword("and")) {
      auto right = Factor(depth);
      if (!right.ok()) return right;
      auto node = std::make_shared<Rule::Node>();
      node->kind = Rule::Node::kAnd;
      node->children = {n, *right};
      n = node;
    }
    return n;
  }

  core::Result<NodePtr> Factor(int depth) {
    if (depth > kMaxDepth) return Error("rule nests too deeply");
    if (Keyword("not")) {
      auto inner = Factor(depth + 1);
      if (!inner.ok()) return inner;
      auto node = std::make_shared<Rule::Node>();
      node->kind = Rule::Node::kNot;
      node->children = {*inner};
      return NodePtr(node);
    }
    if (Symbol("(")) {
      auto inner = Expr(depth + 1);
      if (!inner.ok()) return inner;
      if (!Symbol(")")) return Error("expected `)`");
      return inner;
    }
    return Comparison();
  }

  core::Result<std::string> Name() {
    Skip();
    std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '_' || s_[pos_] == '.' || s_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == start || !std::isalpha(static_cast<unsigned char>(s_[start]))) {
      pos_ = start;
      return Error("expected an attribute name");
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  core::Result<std::string> String() {
    Skip();
    if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a \"quoted string\"");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out += s_[pos_++];
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    ++pos_;
    return out;
  }

  core::Result<NodePtr> Comparison() {
    auto name = Name();
    if (!name.ok()) return name.status();
    auto node = std::make_shared<Rule::Node>();
    node->name = *name;
    if (Symbol("==") || Symbol("!=")) {
      node->kind = s_[pos_ - 2] == '=' ? Rule::Node::kEq : Rule::Node::kNe;
      auto v = String();
      if (!v.ok()) return v.status();
      node->values = {*v};
      return NodePtr(node);
    }
    if (!Keyword("in")) return Error("expected ==, != or in after `" + *name + "`");
    if (Symbol("[")) {
      node->kind = Rule::Node::kInList;
      if (!Symbol("]")) {
        for (;;) {
          auto v = String();
          if (!v.ok()) return v.status();
          node->values.push_back(*v);
          if (Symbol("]")) break;
          if (!Symbol(",")) return Error("expected `,` or `]`");
        }
      }
      return NodePtr(node);
    }
    Skip();
    std::size_t start = pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) &&
           s_[pos_] != ')')
      ++pos_;
    auto cidr = core::ParseCidr(s_.substr(start, pos_ - start));
    if (!cidr.ok()) {
      pos_ = start;
      return Error("expected a [list] or a CIDR block like 10.0.0.0/8 after `in`");
    }
    node->kind = Rule::Node::kInCidr;
    node->cidr = *cidr;
    return NodePtr(node);
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

bool Eval(const Rule::Node& n, const Attributes& attrs) {
  static const std::vector<std::string> kNone;
  auto values = [&]() -> const std::vector<std::string>& {
    auto it = attrs.find(n.name);
    return it == attrs.end() ? kNone : it->second;
  };
  switch (n.kind) {
    case Rule::Node::kAnd:
      return Eval(*n.children[0], attrs) && Eval(*n.children[1], attrs);
    case Rule::Node::kOr:
      return Eval(*n.children[0], attrs) || Eval(*n.children[1], attrs);
    case Rule::Node::kNot:
      return !Eval(*n.children[0], attrs);
    case Rule::Node::kEq:
    case Rule::Node::kInList:
      for (const auto& v : values()) {
        for (const auto& want : n.values) {
          if (v == want) return true;
        }
      }
      return false;
    case Rule::Node::kNe:
      for (const auto& v : values()) {
        if (v == n.values[0]) return false;
      }
      return true;
    case Rule::Node::kInCidr:
      for (const auto& v : values()) {
        auto ip = core::ParseIp(v);
        if (ip.ok() && core::CidrContains(n.cidr, *ip)) return true;
      }
      return false;
  }
  return false;
}

}  // namespace

core::Result<Rule> Rule::Parse(std::string_view text) {
  if (text.size() > kMaxLength) {
    return Status::InvalidArgument("rule is longer than " + std::to_string(kMaxLength) +
                                   " characters");
  }
  Parser p(text);
  auto root = p.Parse();
  if (!root.ok()) return root.status();
  Rule r;
  r.text_ = std::string(text);
  r.root_ = *root;
  return r;
}

bool Rule::Matches(const Attributes& attributes) const {
  return root_ != nullptr && Eval(*root_, attributes);
}

}  // namespace depot::site
