# Above ZFS's 16M maximum.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.recordsize = "32M";
}
