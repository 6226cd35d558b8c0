# dry-activate prints the plan of the configuration it would switch to and changes nothing.
{ self }:
{
  name = "persistctl-dry-activate";

  nodes.machine =
    { lib, ... }:
    {
      imports = [ (import ./common.nix { inherit self; }) ];

      specialisation.changed.configuration = {
        modules.storage.datasets.services.app.compression = lib.mkForce "zstd";
        modules.storage.datasets.services.extra.recordsize = "1M";
      };
    };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("zpool create -f -o ashift=12 -O mountpoint=none tank /dev/vdb")
    machine.succeed("systemctl restart zfs-service-datasets.service")

    def zfs_state():
        return machine.succeed("zfs get -H -p -o name,property,value,source all -r tank")

    before = zfs_state()
    output = machine.succeed(
        "/run/current-system/specialisation/changed/bin/switch-to-configuration dry-activate 2>&1"
    )
    print(output)
    assert "persistctl" in output, "the activation snippet did not run on dry-activate"
    assert "tank/persist/extra" in output, "the plan does not mention the dataset it would create"
    assert "compression" in output, "the plan does not mention the property it would change"

    machine.fail("zfs list tank/persist/extra")
    assert machine.succeed("zfs get -H -o value compression tank/persist/app").strip() == "lz4"
    after = zfs_state()
    # Space accounting may move on its own; every other property must be exactly as before.
    counters = {
        "used", "available", "referenced", "written", "logicalused", "logicalreferenced",
        "usedbydataset", "usedbychildren", "usedbysnapshots", "compressratio", "refcompressratio",
    }
    changed = [
        line for line in set(before.splitlines()) ^ set(after.splitlines())
        if line.split("\t")[1] not in counters
    ]
    assert not changed, changed
  '';
}
