# OpenZFS allows only lower-case letters, digits and ": . _ -" in a user property name.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties."a+b:x" = "1";
}
