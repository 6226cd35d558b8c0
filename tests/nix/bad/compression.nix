# A compression ZFS does not have.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.compression = "snappy";
}
