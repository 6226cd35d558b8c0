# keylocation only means something on an encryption root.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.keylocation = "file:///run/key";
}
