# modules.notifications, the NixOS half: the `notify@.service` template unit and `OnFailure=` for
# the units listed in `onFailure`. What is sent, where and how is decided by `persistctl notify`,
# from the `notifications` key of /etc/persistctl/config.json (added by ./options.nix).
{
  config,
  lib,
  utils,
  ...
}:
let
  cfg = config.modules.notifications;
  storage = config.modules.storage.datasets;
  persistctl = "${storage.package}/bin/persistctl";

  # Every backend's attempts and pauses, plus journalctl and slack: the binary's formula
  # (nix/lib/delivery.nix, checked against `persistctl check-config --json`).
  unitTimeout = (import ../../lib/delivery.nix { inherit lib; }).unitTimeout cfg;

  backendCount = lib.foldl' (n: kind: n + builtins.length (builtins.attrNames (lib.filterAttrs (_: b: b.enable) kind))) 0 (
    builtins.attrValues cfg.backends
  );
in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = storage.enable;
            message = "modules.notifications needs modules.storage.datasets.enable: its settings live in /etc/persistctl/config.json.";
          }
        ];
        warnings = lib.optional (
          backendCount == 0
        ) "modules.notifications is enabled without an enabled backend: notifications go nowhere.";

        # `OnFailure=notify@%n.service`: the instance is the failed unit's name (it has a dot), or a
        # template name (`notify@preseed-failure.service`). `%i` keeps the unit name's escapes;
        # persistctl prefers systemd's exact MONITOR_UNIT when it is set.
        systemd.services."notify@" = {
          description = "persistctl notification for %i";
          # No OnFailure= here (never notify about the notifier): a failed notify@ unit shows in
          # `systemctl --failed` and its journal says which backend refused and why.
          path = [ config.systemd.package ];
          serviceConfig = {
            Type = "oneshot";
            ExecStart = "${utils.escapeSystemdExecArgs [
              persistctl
              "--config"
              "${config.system.build.persistctlConfig}"
              "notify"
            ]} %i";
            TimeoutStartSec = unitTimeout;
          };
        };
      }
      {
        systemd.services = lib.genAttrs cfg.onFailure (_: {
          onFailure = [ "notify@%n.service" ];
        });
      }
    ]
  );
}
