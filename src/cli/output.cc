#include "cli/output.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/json_output.h"
#include "core/hex.h"

namespace depot::cli {

namespace {
double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int ReportError(const core::Status& s, bool json) {
  std::fprintf(stderr, "depot: error: %s\n", s.message().c_str());
  if (json) {
    nlohmann::json j = {{"error", {{"code", core::CodeName(s.code())}, {"message", s.message()}}}};
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return kExitFailed;
}

std::string HumanBytes(std::uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

ProgressBar::ProgressBar(std::string label, const std::atomic<std::uint64_t>* done,
                         const std::atomic<std::uint64_t>* total)
    : label_(std::move(label)),
      done_(done),
      total_(total),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(NowSeconds()) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    while (!stop_) {
      Draw(false);
      for (int i = 0; i < 4 && !stop_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
}

ProgressBar::~ProgressBar() {
  if (!enabled_) return;
  stop_ = true;
  thread_.join();
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

void ProgressBar::Draw(bool) {
  std::uint64_t done = done_->load();
  std::uint64_t total = total_ ? total_->load() : 0;
  double elapsed = NowSeconds() - start_;
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  constexpr int kWidth = 30;
  std::string bar;
  if (total > 0) {
    int filled = static_cast<int>(kWidth * std::min(1.0, static_cast<double>(done) / total));
    bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, ' ') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof(pct), "%3d%% ", static_cast<int>(100.0 * done / total));
    bar += pct;
    bar += HumanBytes(done) + " / " + HumanBytes(total);
  } else {
    bar = HumanBytes(done);
  }
  std::fprintf(stderr, "\r\033[K%s %s  %s/s", label_.c_str(), bar.c_str(),
               HumanBytes(static_cast<std::uint64_t>(rate)).c_str());
  std::fflush(stderr);
}

}  // namespace depot::cli

namespace depot::cli {

void PrintJson(const nlohmann::json& j) {
  std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace depot::cli

namespace depot::cli {

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < width.size(); ++i) {
      std::string c = i < cells.size() ? cells[i] : "";
      out += c;
      if (i + 1 < width.size()) out += std::string(width[i] - c.size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
  if (rows.empty()) std::printf("(none)\n");
}

}  // namespace depot::cli

namespace depot::cli {

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int StopSignals::Wait() {
  int sig = 0;
  sigwait(&set_, &sig);
  return sig;
}

std::string RedactTokens(std::string_view text) {
  std::string out;
  for (std::size_t at = 0;;) {
    std::size_t start = text.find("depot_", at);
    if (start == std::string_view::npos) {
      out.append(text.substr(at));
      return out;
    }
    std::size_t kind_end = start + 6;
    while (kind_end < text.size() &&
           ((text[kind_end] >= 'a' && text[kind_end] <= 'z') || text[kind_end] == '-')) {
      ++kind_end;
    }
    std::size_t secret = kind_end + 1;
    bool token = kind_end > start + 6 && kind_end < text.size() && text[kind_end] == '_' &&
                 secret + 64 <= text.size() && core::IsLowerHex(text.substr(secret, 64), 64);
    if (!token) {
      out.append(text.substr(at, kind_end - at));
      at = kind_end;
      continue;
    }
    out.append(text.substr(at, secret - at)).append("<redacted>");
    at = secret + 64;
  }
}

}  // namespace depot::cli
