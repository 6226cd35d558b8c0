# A restic job over a running cluster's files is not a backup (seed 6.3).
{
  modules.storage.datasets = {
    enable = true;
    services.postgres-data.backup.restic = {
      enable = true;
      repository = "/srv/restic/nas";
      passwordFile = "/run/secrets/restic";
    };
  };
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
