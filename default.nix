# For users without flakes: the flake's outputs, with nixpkgs taken from flake.lock (the same pin).
#
#   let persistctl = import (fetchTarball "https://github.com/<owner>/persistctl/archive/main.tar.gz") { };
#   in { imports = [ persistctl.nixosModules.default ]; }
#
# `nixpkgs` may be given (a path or source of nixpkgs) to use another one.
{
  nixpkgs ?
    let
      lock = (builtins.fromJSON (builtins.readFile ./flake.lock)).nodes.nixpkgs.locked;
    in
    fetchTarball {
      url = "https://github.com/${lock.owner}/${lock.repo}/archive/${lock.rev}.tar.gz";
      sha256 = lock.narHash;
    },
}:
let
  flake = import ./flake.nix;
  self = flake.outputs {
    inherit self;
    nixpkgs =
      let
        source = nixpkgs;
      in
      {
        outPath = source;
        lib = import (source + "/lib");
        legacyPackages = builtins.listToAttrs (
          map
            (system: {
              name = system;
              value = import source { inherit system; };
            })
            [
              "x86_64-linux"
              "aarch64-linux"
            ]
        );
      };
  }
  // {
    outPath = ./.;
  };
in
self
