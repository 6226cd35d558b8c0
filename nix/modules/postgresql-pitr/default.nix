# modules.database.postgresql.pitr for NixOS: options, the config object and the PGDATA dataset's
# preseed (lib-only), and the NixOS wiring (postgresql settings, the base backup and retention units).
{
  imports = [
    ./options.nix
    ./nixos.nix
  ];
}
