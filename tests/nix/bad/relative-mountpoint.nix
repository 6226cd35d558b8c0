# Mountpoints are absolute.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.mountpoint = "persist/app";
}
