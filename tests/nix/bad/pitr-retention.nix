# barman's policies are RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS or REDUNDANCY <n>.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    retention = "30 DAYS";
  };
}
