# The machine every scenario starts from: ZFS, an empty second disk for the pool `tank` (created by
# the test script, as an installer or disko would), persistctl's module, and a stand-in service
# `app` that keeps its data on tank/persist/app.
{ self }:
{ config, pkgs, ... }:
{
  imports = [ self.nixosModules.default ];

  boot.supportedFilesystems = [ "zfs" ];
  boot.zfs.extraPools = [ "tank" ];
  networking.hostId = "8425e349";
  virtualisation.memorySize = 1536;
  virtualisation.emptyDiskImages = [ 1024 ];
  environment.systemPackages = [ config.boot.zfs.package ];

  modules.storage.datasets = {
    enable = true;
    parentDataset = "tank/persist";
    parentMount = "/persist";
    createParent = true;
    services.app = {
      recordsize = "16K";
      compression = "lz4";
      properties."com.sun:auto-snapshot" = "true";
      owner = "app";
      group = "app";
      mode = "0750";
      usedBy = [ "app" ];
    };
  };

  users.users.app = {
    isSystemUser = true;
    group = "app";
  };
  users.groups.app = { };

  # Writes into its dataset. No mount condition of its own: the module gives every usedBy unit
  # AssertPathIsMountPoint= and the `persistctl guard` ExecStartPre, and the tests rely on those.
  systemd.services.app = {
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      User = "app";
      ExecStart = "${pkgs.coreutils}/bin/touch /persist/app/started";
    };
  };
}
