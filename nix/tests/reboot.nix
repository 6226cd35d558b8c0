# A reboot keeps everything: same datasets (same guids), same properties, same data, the boot unit
# succeeds without changing anything, and `app` starts after it.
{ self }:
{
  name = "persistctl-reboot";

  nodes.machine = import ./common.nix { inherit self; };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("zpool create -f -o ashift=12 -O mountpoint=none tank /dev/vdb")
    machine.succeed("systemctl restart zfs-service-datasets.service")
    machine.succeed("echo precious > /persist/app/data")

    def state():
        return machine.succeed(
            "zfs get -H -p -o name,property,value,source guid,recordsize,compression,mountpoint,com.sun:auto-snapshot -r tank"
        )

    before = state()

    machine.shutdown()
    machine.start()
    machine.wait_for_unit("zfs-service-datasets.service")
    machine.wait_for_unit("app.service")

    after = state()
    assert before == after, f"{before}\n!=\n{after}"
    machine.succeed("grep -q precious /persist/app/data")
    machine.succeed("test \"$(stat -c '%U:%G %a' /persist/app)\" = 'app:app 750'")
    # app started after the datasets were in place.
    datasets_done = int(machine.succeed("systemctl show -P ActiveEnterTimestampMonotonic zfs-service-datasets.service"))
    app_started = int(machine.succeed("systemctl show -P InactiveExitTimestampMonotonic app.service"))
    assert datasets_done <= app_started, (datasets_done, app_started)
    machine.succeed("persistctl plan")
  '';
}
