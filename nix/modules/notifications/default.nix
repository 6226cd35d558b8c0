# modules.notifications for NixOS: options and the config object (lib-only), and the NixOS wiring.
{
  imports = [
    ./options.nix
    ./nixos.nix
  ];
}
