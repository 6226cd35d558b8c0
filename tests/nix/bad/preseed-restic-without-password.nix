# A restic repository needs its password file.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.usedBy = [ "app" ];
  modules.storage.datasets.services.app.preseed = {
    enable = true;
    restic.repository = "/srv/restic/nas";
  };
}
