// The installer: exit codes judged by the manifest's lists, a program over its
// timeout judged timed out on the monotonic clock (a ManualClock moved past it), the
// run directory recorded before the program starts, and a restarted installer that
// picks an attempt up instead of running it again.
#include "agent/installer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "agent/parts_fixture.h"
#include "agent/program.h"
#include "core/path.h"

namespace depot::agent {
namespace {

using testing::Json;

TEST(MapExitCodeTest, TheManifestsListsDecide) {
  store::Program p;
  p.success_codes = {0, 2};
  p.reboot_codes = {101};
  p.retry_codes = {75, 76};
  EXPECT_EQ(MapExitCode(p, 0), Event::kProgramSucceeded);
  EXPECT_EQ(MapExitCode(p, 2), Event::kProgramSucceeded);
  EXPECT_EQ(MapExitCode(p, 101), Event::kProgramRebootRequired);
  EXPECT_EQ(MapExitCode(p, 75), Event::kProgramRetry);
  EXPECT_EQ(MapExitCode(p, 76), Event::kProgramRetry);
  EXPECT_EQ(MapExitCode(p, 1), Event::kProgramFailed);
  EXPECT_EQ(MapExitCode(p, -1), Event::kProgramFailed);
  // The defaults: 0 succeeds, everything else fails.
  store::Program plain;
  EXPECT_EQ(MapExitCode(plain, 0), Event::kProgramSucceeded);
  EXPECT_EQ(MapExitCode(plain, 101), Event::kProgramFailed);
  EXPECT_EQ(MapExitCode(plain, 75), Event::kProgramFailed);
}

class InstallerTest : public testing::PartsFixture {
 protected:
  // Deployment `id` of package "p<id>" version 1 in `installing`, whose signed
  // manifest (held, as after a download) has program "install" running `command`.
  Deployment Installing(std::int64_t id, const std::string& command,
                        const std::function<void(store::Program*)>& edit = nullptr) {
    repo::AddResult v = AddVersion("p" + std::to_string(id), {{"a.txt", "a"}}, command, edit);
    SaveManifest(v);
    Insert(Item(id, v));
    for (Event e : {Event::kStart, Event::kDownloaded, Event::kInstallAllowed}) {
      auto to = state_->Transition(id, e, {}, {});
      EXPECT_TRUE(to.ok() && to->has_value());
    }
    EXPECT_TRUE(env_->CreateDirs(content_->Dir(v.package, 1), 0750).ok());
    return Get(id);
  }

  // Starts d's program; the deployment as stored afterwards.
  Deployment Start(const Deployment& d) {
    const store::Program* p = installer_->ProgramOf(d.manifest_id, d.program);
    EXPECT_NE(p, nullptr);
    if (p == nullptr) return d;
    core::Status s = installer_->Start(d, *p);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return Get(d.id);
  }

  // Polls the attempt until it is no longer running: the program's end is the event
  // (bounded, in real time; the clock under test is not moved).
  Verdict WaitForVerdict(std::int64_t id) {
    for (int i = 0; i < 3000; ++i) {
      ReapChildren();
      Verdict v = installer_->Check(Get(id));
      if (v.kind != Verdict::Kind::kRunning) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "the program of deployment " << id << " never ended";
    return {};
  }

  std::string Count() { return dir_.Sub("count"); }
  std::size_t Runs() {
    auto text = env_->ReadFile(Count(), 1 << 20);
    if (!text.ok()) return 0;
    return static_cast<std::size_t>(std::count(text->begin(), text->end(), '\n'));
  }
};

TEST_F(InstallerTest, AProgramsExitIsJudgedByItsLists) {
  struct Case {
    std::string command;
    Event event;
    std::string error;
  } cases[] = {
      {"echo fine; exit 0", Event::kProgramSucceeded, ""},
      {"echo reboot; exit 101", Event::kProgramRebootRequired, ""},
      {"echo later; exit 75", Event::kProgramRetry, "exit code 75 asks for a retry"},
      {"echo broken; exit 9", Event::kProgramFailed, "exit code 9"},
  };
  std::int64_t id = 0;
  for (const Case& c : cases) {
    Deployment d = Installing(++id, c.command, [](store::Program* p) {
      p->reboot_codes = {101};
      p->retry_codes = {75};
    });
    Verdict before = installer_->Check(d);
    EXPECT_EQ(before.kind, Verdict::Kind::kStart) << "no attempt yet";
    d = Start(d);
    Verdict v = WaitForVerdict(id);
    EXPECT_EQ(v.kind, Verdict::Kind::kDone) << c.command;
    EXPECT_EQ(v.event, c.event) << c.command;
    EXPECT_EQ(v.error, c.error) << c.command;
    ASSERT_TRUE(v.exit_code.has_value());
    EXPECT_EQ(*v.exit_code, std::atoi(c.command.substr(c.command.rfind(' ') + 1).c_str()));
    EXPECT_NE(v.output.find(c.command.substr(5, c.command.find(';') - 5)), std::string::npos)
        << v.output;
    EXPECT_FALSE(v.kill);
  }
}

TEST_F(InstallerTest, TheProgramRunsInItsContentDirectoryWithItsEnvironment) {
  Deployment d =
      Installing(7, "pwd; echo \"$DEPOT_PACKAGE $DEPOT_VERSION $DEPOT_DEPLOYMENT $DEPOT_PROGRAM\"");
  Start(d);
  Verdict v = WaitForVerdict(7);
  EXPECT_EQ(v.event, Event::kProgramSucceeded);
  EXPECT_NE(v.output.find(content_->Dir("p7", 1)), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("p7 1 7 install"), std::string::npos) << v.output;
}

TEST_F(InstallerTest, TheRunDirectoryIsRecordedBeforeTheProgramStarts) {
  Deployment d = Installing(1, "echo ran >> " + Count());
  // Recording the run directory fails: the program must not start.
  auto other = catalog::Db::OpenSqlite(core::JoinPath(data_dir_, "state.db"));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(
      (*other)
          ->Transaction([](catalog::Tx& tx) {
            return tx.ExecScript(
                "CREATE TRIGGER no_runs BEFORE UPDATE OF run_dir ON deployments BEGIN SELECT "
                "RAISE(ABORT, 'injected'); END;");
          })
          .ok());
  EXPECT_FALSE(installer_->Start(d, *installer_->ProgramOf(d.manifest_id, d.program)).ok());
  auto runs = env_->ListDir(core::JoinPath(data_dir_, "runs"));
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty()) << "an attempt started that the state does not know of";
  EXPECT_EQ(Get(1).run_dir, "");

  ASSERT_TRUE(
      (*other)
          ->Transaction([](catalog::Tx& tx) { return tx.ExecScript("DROP TRIGGER no_runs;"); })
          .ok());
  d = Start(d);
  ASSERT_NE(d.run_dir, "");
  EXPECT_EQ(d.run_started_ms, NowMs());
  EXPECT_EQ(WaitForVerdict(1).event, Event::kProgramSucceeded);
  EXPECT_EQ(Runs(), 1u);
}

TEST_F(InstallerTest, ARestartedInstallerPicksTheAttemptUpAndNeverRunsItTwice) {
  const std::string go = dir_.Sub("go");
  Deployment d = Installing(
      1, "while [ ! -e " + go + " ]; do sleep 0.01; done; echo ran >> " + Count() + "; exit 0");
  d = Start(d);
  EXPECT_TRUE(installer_->Running(d));
  // The agent restarts while the program runs: the new installer sees it running.
  Close();
  Open();
  Verdict v = installer_->Check(Get(1));
  EXPECT_EQ(v.kind, Verdict::Kind::kRunning);
  depot::testing::WriteFileOrDie(go, "");
  v = WaitForVerdict(1);
  EXPECT_EQ(v.kind, Verdict::Kind::kDone);
  EXPECT_EQ(v.event, Event::kProgramSucceeded);
  // And again after it ended: the recorded exit, not a new attempt.
  Close();
  Open();
  v = installer_->Check(Get(1));
  EXPECT_EQ(v.kind, Verdict::Kind::kDone);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(Runs(), 1u);
}

TEST_F(InstallerTest, ARunDirectoryRecordedButNeverMadeMeansStartAgain) {
  Deployment d = Installing(1, "true");
  // The agent was killed between recording the attempt and starting it.
  ASSERT_TRUE(state_->SetRun(1, core::JoinPath(data_dir_, "runs/1-1-never"), NowMs()).ok());
  EXPECT_EQ(installer_->Check(Get(1)).kind, Verdict::Kind::kStart);
  EXPECT_FALSE(installer_->Running(Get(1)));
}

TEST_F(InstallerTest, WithoutItsManifestTheOutcomeIsUnknown) {
  Deployment d = Installing(1, "true");
  ASSERT_TRUE(env_->Remove(content_->ManifestPath(d.manifest_id)).ok());
  EXPECT_EQ(installer_->ProgramOf(d.manifest_id, "install"), nullptr);
  Verdict v = installer_->Check(d);
  EXPECT_EQ(v.kind, Verdict::Kind::kDone);
  EXPECT_EQ(v.event, Event::kOutcomeUnknown);
  EXPECT_NE(v.error.find("manifest missing"), std::string::npos) << v.error;
  // A damaged manifest is none either.
  depot::testing::WriteFileOrDie(content_->ManifestPath(d.manifest_id), "{}");
  EXPECT_EQ(installer_->ProgramOf(d.manifest_id, "install"), nullptr);
}

TEST_F(InstallerTest, AProgramOverItsTimeoutIsJudgedTimedOutAndCanBeKilled) {
  Deployment d = Installing(1, "exec sleep 600", [](store::Program* p) { p->timeout_s = 60; });
  d = Start(d);
  EXPECT_EQ(installer_->Check(d).kind, Verdict::Kind::kRunning);
  // The wall clock jumping is no time spent running.
  clock_.Set(clock_.Now() + std::chrono::hours(2));
  EXPECT_EQ(installer_->Check(d).kind, Verdict::Kind::kRunning);
  clock_.Advance(std::chrono::seconds(59));
  EXPECT_EQ(installer_->Check(d).kind, Verdict::Kind::kRunning);
  clock_.Advance(std::chrono::seconds(2));
  Verdict v = installer_->Check(d);
  EXPECT_EQ(v.kind, Verdict::Kind::kDone);
  EXPECT_EQ(v.event, Event::kProgramTimedOut);
  EXPECT_TRUE(v.kill);
  EXPECT_NE(v.error.find("timed out after 60 s"), std::string::npos) << v.error;
  KillProgram(d.run_dir);
  RunState st = WaitUntilStopped(d.run_dir);
  EXPECT_NE(st, RunState::kRunning);
  EXPECT_NE(st, RunState::kExited) << "killed: no exit code";
  EXPECT_FALSE(installer_->Running(Get(1)));
}

TEST_F(InstallerTest, ARestartedInstallerTimesAProgramByItsRecordedStart) {
  Deployment d = Installing(1, "exec sleep 600", [](store::Program* p) { p->timeout_s = 60; });
  d = Start(d);
  Close();
  Open();
  clock_.Advance(std::chrono::seconds(59));
  EXPECT_EQ(installer_->Check(Get(1)).kind, Verdict::Kind::kRunning);
  clock_.Advance(std::chrono::seconds(2));
  Verdict v = installer_->Check(Get(1));
  EXPECT_EQ(v.event, Event::kProgramTimedOut);
  EXPECT_TRUE(v.kill);
  KillProgram(d.run_dir);
  EXPECT_NE(WaitUntilStopped(d.run_dir), RunState::kRunning);
}

}  // namespace
}  // namespace depot::agent
