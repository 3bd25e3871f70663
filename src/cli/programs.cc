#include "cli/programs.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>

#include "core/clock.h"

namespace depot::cli {

using core::Status;

void AddProgramFlags(CLI::App* cmd, ProgramFlags* pf, bool removable) {
  cmd->add_option(
      "--program", pf->programs,
      removable
          ? "Set program NAME=COMMAND (repeatable; the others carry over from the newest version)"
          : "Install program NAME=COMMAND (repeatable)");
  if (removable)
    cmd->add_option("--remove-program", pf->remove, "Drop a program the newest version has");
  cmd->add_option("--timeout", pf->timeouts, "Program timeout NAME=DURATION, e.g. install=30m");
  cmd->add_option("--success-codes", pf->success, "NAME=CODES, e.g. install=0,1");
  cmd->add_option("--reboot-codes", pf->reboot, "Exit codes meaning success, reboot required");
  cmd->add_option("--retry-codes", pf->retry, "Exit codes meaning try again later");
}

// "NAME=VALUE" -> (NAME, VALUE); InvalidArgument naming the flag otherwise.
core::Result<std::pair<std::string, std::string>> SplitAssignment(const std::string& s,
                                                                  const char* flag) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument(std::string(flag) + " '" + s + "' must look like NAME=VALUE");
  }
  return std::make_pair(s.substr(0, eq), s.substr(eq + 1));
}

namespace {

core::Result<std::vector<int>> ParseCodes(const std::string& list, const std::string& what) {
  std::vector<int> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    char* rest = nullptr;
    long v = std::strtol(item.c_str(), &rest, 10);
    if (item.empty() || *rest != '\0' || v < 0 || v > 255) {
      return Status::InvalidArgument(what + ": '" + item + "' is not an exit code 0..255");
    }
    out.push_back(static_cast<int>(v));
    start = end + 1;
  }
  return out;
}

}  // namespace

core::Result<std::vector<store::Program>> BuildPrograms(const ProgramFlags& f,
                                                        std::vector<store::Program> base) {
  std::vector<store::Program> out = std::move(base);
  const bool had_base = !out.empty();
  auto find_in = [&](const std::string& name) -> store::Program* {
    for (auto& p : out) {
      if (p.name == name) return &p;
    }
    return nullptr;
  };
  for (const auto& name : f.remove) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const store::Program& p) { return p.name == name; });
    if (it == out.end()) {
      return Status::InvalidArgument("--remove-program names program '" + name +
                                     "', which the newest version does not have");
    }
    out.erase(it);
  }
  for (const auto& s : f.programs) {
    DEPOT_ASSIGN_OR_RETURN(auto kv, SplitAssignment(s, "--program"));
    DEPOT_RETURN_IF_ERROR(store::ValidateProgramName(kv.first));
    if (store::Program* p = find_in(kv.first)) {
      p->command = kv.second;
      continue;
    }
    store::Program p;
    p.name = kv.first;
    p.command = kv.second;
    out.push_back(std::move(p));
  }
  auto find = [&](const std::string& name, const char* flag) -> core::Result<store::Program*> {
    if (store::Program* p = find_in(name)) return p;
    return Status::InvalidArgument(std::string(flag) + " names program '" + name +
                                   "', which no --program defines" +
                                   (had_base ? " and the newest version does not have" : ""));
  };
  for (const auto& s : f.timeouts) {
    DEPOT_ASSIGN_OR_RETURN(auto kv, SplitAssignment(s, "--timeout"));
    DEPOT_ASSIGN_OR_RETURN(store::Program * p, find(kv.first, "--timeout"));
    DEPOT_ASSIGN_OR_RETURN(core::Duration d, core::ParseDuration(kv.second));
    p->timeout_s =
        static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  }
  struct CodeFlag {
    const std::vector<std::string>* values;
    const char* flag;
    std::vector<int> store::Program::*member;
  };
  for (const CodeFlag& cf :
       {CodeFlag{&f.success, "--success-codes", &store::Program::success_codes},
        CodeFlag{&f.reboot, "--reboot-codes", &store::Program::reboot_codes},
        CodeFlag{&f.retry, "--retry-codes", &store::Program::retry_codes}}) {
    for (const auto& s : *cf.values) {
      DEPOT_ASSIGN_OR_RETURN(auto kv, SplitAssignment(s, cf.flag));
      DEPOT_ASSIGN_OR_RETURN(store::Program * p, find(kv.first, cf.flag));
      DEPOT_ASSIGN_OR_RETURN(p->*cf.member, ParseCodes(kv.second, cf.flag));
    }
  }
  return out;
}

std::string DescribeProgram(const store::Program& p) {
  auto codes = [](const std::vector<int>& v) {
    std::string out;
    for (int c : v) out += (out.empty() ? "" : ",") + std::to_string(c);
    return out;
  };
  std::string timeout = p.timeout_s % 3600 == 0 ? std::to_string(p.timeout_s / 3600) + "h"
                        : p.timeout_s % 60 == 0 ? std::to_string(p.timeout_s / 60) + "m"
                                                : std::to_string(p.timeout_s) + "s";
  std::string out =
      p.name + ": " + p.command + "  (timeout " + timeout + ", success " + codes(p.success_codes);
  if (!p.reboot_codes.empty()) out += ", reboot " + codes(p.reboot_codes);
  if (!p.retry_codes.empty()) out += ", retry " + codes(p.retry_codes);
  return out + ")";
}

}  // namespace depot::cli
