// How commands talk to operators and scripts: human text on stdout (or one JSON
// document with --json), errors on stderr, and a progress bar on stderr when it is
// a terminal.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace depot::cli {

// Process exit codes, stable for scripts (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the operation failed; stderr says why
inline constexpr int kExitUsage = 2;   // bad command line
inline constexpr int kExitDamage = 3;  // verify found damaged objects

// Prints "depot: error: <message>" to stderr, and with `json` also
// {"error":{"code":...,"message":...}} to stdout. Returns kExitFailed.
int ReportError(const core::Status& s, bool json);

// "1.5 GiB", "512 KiB", "17 B".
std::string HumanBytes(std::uint64_t n);

// `text` with every depot token secret in it ("depot_<kind>_<64 hex>") replaced by
// "depot_<kind>_<redacted>": for messages that quote the command line back.
std::string RedactTokens(std::string_view text);

// A progress bar drawn on stderr every 200 ms while alive, only when stderr is a
// terminal. Reads the counters it is given; never writes them.
class ProgressBar {
 public:
  ProgressBar(std::string label, const std::atomic<std::uint64_t>* done,
              const std::atomic<std::uint64_t>* total);
  ~ProgressBar();  // erases the bar
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

 private:
  void Draw(bool final);
  std::string label_;
  const std::atomic<std::uint64_t>* done_;
  const std::atomic<std::uint64_t>* total_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  bool enabled_;
  double start_;
};

}  // namespace depot::cli

namespace depot::cli {

// Prints rows under a header, columns padded to their widest cell.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

}  // namespace depot::cli

namespace depot::cli {

// For the serve commands: blocks SIGINT and SIGTERM (and ignores SIGPIPE) in the
// calling thread and so in every thread it starts afterwards -- construct it before
// starting any -- so Wait() can take the signal synchronously.
class StopSignals {
 public:
  StopSignals();
  // Blocks until SIGINT or SIGTERM arrives; returns the signal.
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace depot::cli
