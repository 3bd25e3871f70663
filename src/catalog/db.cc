#include "catalog/db.h"

#include <charconv>
#include <cstdio>

namespace depot::catalog {

std::int64_t Value::AsInt() const {
  switch (v_.index()) {
    case 1:
      return std::get<1>(v_);
    case 2:
      return static_cast<std::int64_t>(std::get<2>(v_));
    case 3: {
      const std::string& s = std::get<3>(v_);
      std::int64_t out = 0;
      std::from_chars(s.data(), s.data() + s.size(), out);
      return out;
    }
    default:
      return 0;
  }
}

double Value::AsDouble() const {
  switch (v_.index()) {
    case 1:
      return static_cast<double>(std::get<1>(v_));
    case 2:
      return std::get<2>(v_);
    case 3:
      return std::strtod(std::get<3>(v_).c_str(), nullptr);
    default:
      return 0;
  }
}

std::string Value::AsText() const {
  switch (v_.index()) {
    case 1:
      return std::to_string(std::get<1>(v_));
    case 2: {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", std::get<2>(v_));
      return buf;
    }
    case 3:
      return std::get<3>(v_);
    default:
      return {};
  }
}

const Value& Row::operator[](std::size_t i) const {
  static const Value kNull;
  return i < values_.size() ? values_[i] : kNull;
}

core::Result<Row> Tx::QueryRow(std::string_view sql, const Params& params) {
  DEPOT_ASSIGN_OR_RETURN(Rows rows, Query(sql, params));
  if (rows.empty()) return core::Status::NotFound("no row");
  return std::move(rows.front());
}

core::Result<std::int64_t> Tx::QueryInt(std::string_view sql, const Params& params) {
  DEPOT_ASSIGN_OR_RETURN(Row row, QueryRow(sql, params));
  return row.Int(0);
}

core::Result<Rows> Db::Query(std::string_view sql, const Params& params) {
  Rows out;
  core::Status s = Transaction(
      [&](Tx& tx) -> core::Status {
        DEPOT_ASSIGN_OR_RETURN(out, tx.Query(sql, params));
        return core::Status::Ok();
      },
      Mode::kRead);
  if (!s.ok()) return s;
  return out;
}

core::Result<Row> Db::QueryRow(std::string_view sql, const Params& params) {
  DEPOT_ASSIGN_OR_RETURN(Rows rows, Query(sql, params));
  if (rows.empty()) return core::Status::NotFound("no row");
  return std::move(rows.front());
}

void Db::Subscribe(Subscriber fn) {
  std::lock_guard<std::mutex> lock(subscribers_mu_);
  subscribers_.push_back(std::move(fn));
}

void Db::Deliver(std::string_view message) {
  std::vector<Subscriber> subscribers;
  {
    std::lock_guard<std::mutex> lock(subscribers_mu_);
    subscribers = subscribers_;
  }
  for (const Subscriber& fn : subscribers) fn(message);
}

core::Status Db::CheckMessage(std::string_view message) {
  if (message.empty() || message.size() > 7000 || message.find('\0') != std::string_view::npos) {
    return core::Status::InvalidArgument("catalog notification of " +
                                         std::to_string(message.size()) +
                                         " bytes: must be 1 to 7000 bytes without NUL");
  }
  return core::Status::Ok();
}

core::Result<std::int64_t> Db::QueryInt(std::string_view sql, const Params& params) {
  DEPOT_ASSIGN_OR_RETURN(Row row, QueryRow(sql, params));
  return row.Int(0);
}

}  // namespace depot::catalog
