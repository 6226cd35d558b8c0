# modules.replication.zfs for NixOS: options and what they render (lib-only), and the NixOS wiring
# (nixpkgs' services.sanoid / services.syncoid, OnFailure hooks, the persistctl-status timer).
{
  imports = [
    ./options.nix
    ./nixos.nix
  ];
}
