# `--tag a,b` is two tags: a comma cannot be part of one.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.backup.restic = {
    enable = true;
    repository = "/srv/restic/nas";
    passwordFile = "/run/secrets/restic-password";
    tags = [ "a,b" ];
  };
}
