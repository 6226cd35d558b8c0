# zfs refuses a size with surrounding spaces.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.quota = " 10G";
}
