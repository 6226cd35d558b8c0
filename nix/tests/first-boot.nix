# First boot on a non-root pool: the pool exists, nothing else does. At boot,
# zfs-service-datasets.service (after zfs-import.target) creates tank/persist and tank/persist/app
# with the declared properties, owner and mode, and `app` starts after it, on the dataset.
{ self }:
{
  name = "persistctl-first-boot";

  nodes.machine = import ./common.nix { inherit self; };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    # The installer's part: a pool on the second disk, and nothing in it.
    machine.succeed("zpool create -f -o ashift=12 -O mountpoint=none tank /dev/vdb")
    machine.succeed("zpool export tank")

    machine.shutdown()
    machine.start()
    machine.wait_for_unit("zfs-service-datasets.service")
    machine.wait_for_unit("app.service")

    def prop(name, dataset="tank/persist/app"):
        return machine.succeed(f"zfs get -H -p -o value {name} {dataset}").strip()

    assert prop("type", "tank/persist") == "filesystem"
    assert prop("recordsize") == "16384", prop("recordsize")
    assert prop("compression") == "lz4", prop("compression")
    assert prop("com.sun:auto-snapshot") == "true"
    assert prop("mountpoint") == "/persist/app"
    assert prop("mounted") == "yes"
    machine.succeed("test \"$(stat -c '%U:%G %a' /persist/app)\" = 'app:app 750'")
    # app ran on the dataset, not on the directory below it.
    machine.succeed("test \"$(findmnt -n -o SOURCE --target /persist/app/started)\" = tank/persist/app")
    # Ordering as declared.
    machine.succeed("systemctl show -p After app.service | grep -q zfs-service-datasets.service")
    machine.succeed("systemctl show -p After zfs-service-datasets.service | grep -q zfs-mount.service")
    machine.succeed("systemctl show -p ExecStartPre app.service | grep -q ' guard app'")
    machine.succeed("systemctl cat app.service | grep -q '^AssertPathIsMountPoint=/persist/app$'")
    # In sync: plan exits 0.
    machine.succeed("persistctl plan")
  '';
}
