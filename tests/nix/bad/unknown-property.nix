# A typo in a property name.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.atim = "off";
}
