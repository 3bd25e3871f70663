// The commands that talk to a site's admin API: token, package, dp, distribute,
// collection, deploy, deployment, client, messages, status. Each area lives in its
// own file; this registers them in the order --help lists them.
#include "cli/admin_support.h"
#include "cli/commands.h"

namespace depot::cli {

void AddAdminCommands(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  AdminCtx c{flags, exit_code};
  AddTokenCommands(app, c);
  AddPackageCommands(app, c);
  AddDpCommands(app, c);
  AddDistributeCommand(app, c);
  AddChildCommands(app, c);
  AddCollectionCommands(app, c);
  AddDeploymentCommands(app, c);
  AddClientCommands(app, c);
  AddStatusCommands(app, c);
}

}  // namespace depot::cli
