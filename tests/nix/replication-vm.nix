# The host the real-ZFS status tests (tests/status_real.rs) play: two pools in one VM, `stsrc` with the
# service datasets and `stdst` receiving their replica. Rendered by nix/modules/replication/render.nix
# into tests/fixtures/replication/ (tests/nix/update-replication-fixtures.sh); nix_eval.rs checks the
# fixtures are current.
{
  modules.storage.datasets = {
    enable = true;
    parentDataset = "stsrc/persist";
    parentMount = "/tmp/status-real/persist";
    services.app = {
      properties."com.sun:auto-snapshot" = "true";
    };
    services.scratch = { };
  };

  modules.replication.zfs = {
    enable = true;
    syncoid = {
      enable = true;
      destination = "stdst/replica";
    };
  };
}
