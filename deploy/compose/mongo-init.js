// Run once by docker-compose.yml's mongo-init (mongosh --host mongo-1):
// makes the three mongo containers the replica set rs0 unless they already
// are one, then waits for a primary, so that the services start on a
// writable set. Running it again changes nothing.
const members = [
  { _id: 0, host: "mongo-1:27017" },
  { _id: 1, host: "mongo-2:27017" },
  { _id: 2, host: "mongo-3:27017" },
];

let initiated = true;
try {
  rs.status();
} catch (e) {
  // NotYetInitialized (94) is the only error that means "not a set yet".
  if (e.code !== 94) throw e;
  initiated = false;
}
if (!initiated) {
  rs.initiate({ _id: "rs0", members });
  print("replica set rs0 initiated");
} else {
  print("replica set rs0 already initiated");
}

const deadline = Date.now() + 120 * 1000;
while (!db.hello().primary) {
  if (Date.now() > deadline) {
    print("replica set rs0 has no primary after 120 s");
    quit(1);
  }
  sleep(500);
}
print("replica set rs0 primary: " + db.hello().primary);
