# modules.storage.datasets for NixOS: options (lib-only), presets (lib-only) and the NixOS wiring.
{
  imports = [
    ./options.nix
    ./presets.nix
    ./nixos.nix
  ];
}
