# Switching into a specialisation that changes a property and adds a service: the change is
# applied on the running system, the new dataset is created, and nothing is recreated (the
# existing dataset keeps its guid and its data).
{ self }:
{
  name = "persistctl-specialisation-switch";

  nodes.machine =
    { lib, pkgs, ... }:
    {
      imports = [ (import ./common.nix { inherit self; }) ];

      specialisation.changed.configuration = {
        modules.storage.datasets.services.app = {
          compression = lib.mkForce "zstd";
          properties.atime = "off";
        };
        modules.storage.datasets.services.extra = {
          recordsize = "1M";
          usedBy = [ "extra" ];
        };
        systemd.services.extra = {
          wantedBy = [ "multi-user.target" ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = "${pkgs.coreutils}/bin/touch /persist/extra/started";
          };
        };
      };
    };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("zpool create -f -o ashift=12 -O mountpoint=none tank /dev/vdb")
    machine.succeed("systemctl restart zfs-service-datasets.service")
    machine.succeed("systemctl start app.service")

    def prop(name, dataset="tank/persist/app"):
        return machine.succeed(f"zfs get -H -p -o value {name} {dataset}").strip()

    guid = prop("guid")
    machine.succeed("echo precious > /persist/app/data")
    assert prop("compression") == "lz4"

    machine.succeed("/run/current-system/specialisation/changed/bin/switch-to-configuration test")

    assert prop("compression") == "zstd", prop("compression")
    assert prop("atime") == "off", prop("atime")
    assert prop("recordsize", "tank/persist/extra") == "1048576"
    assert prop("guid") == guid, "tank/persist/app was recreated"
    machine.succeed("grep -q precious /persist/app/data")
    machine.wait_for_unit("extra.service")
    machine.succeed("test \"$(findmnt -n -o SOURCE --target /persist/extra/started)\" = tank/persist/extra")
    machine.succeed("persistctl plan")
  '';
}
