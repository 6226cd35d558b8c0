# destination is a URL; a bare bucket belongs in s3Bucket.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    destination = "homelab-pitr/db";
  };
}
