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

  # Every backend's attempts and pauses (doubling, at most 60 s), plus journalctl and slack.
  pow2 = n: if n == 0 then 1 else 2 * pow2 (n - 1);
  pauses = lib.foldl' (acc: i: acc + lib.min 60 (cfg.retryDelay * pow2 i)) 0 (lib.genList (i: i) (cfg.attempts - 1));
  worstCase = cfg.timeout * cfg.attempts + pauses + 10 + 30;

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
            TimeoutStartSec = worstCase;
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
