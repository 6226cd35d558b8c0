# The libpq password file is a secret too.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    passwordFile = "/nix/store/00000000000000000000000000000000-pgpass";
  };
}
