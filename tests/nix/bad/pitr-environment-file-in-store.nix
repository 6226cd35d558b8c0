# A credentials file in the Nix store (what `./pitr.env` in a flake becomes) is readable by everyone.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    environmentFile = "/nix/store/00000000000000000000000000000000-source/secrets/pitr.env";
  };
}
