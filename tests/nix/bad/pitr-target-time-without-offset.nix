# A time without an offset means a different instant on every host.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    targetTime = "2026-12-01 21:27:59";
  };
}
