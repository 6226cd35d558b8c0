# A unit's template must exist.
{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    unitTemplates."restic-backups-sonarr.service" = "backup-failure";
  };
}
