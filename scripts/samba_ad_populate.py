"""The accounts of the test and demo Active Directory domain (run by samba-ad.sh with the system
python, which has Samba's own bindings): one process instead of a samba-tool call per object."""

import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, sam = sys.argv[1], sys.argv[2]
lp = LoadParm()
lp.load(conf)
db = SamDB(url=sam, session_info=system_session(), lp=lp)
base = str(db.domain_dn())

# A lockout policy, so that "account locked" is something the directory really says.
msg = ldb.Message(ldb.Dn(db, base))
msg["lockoutThreshold"] = ldb.MessageElement("5", ldb.FLAG_MOD_REPLACE, "lockoutThreshold")
msg["lockoutDuration"] = ldb.MessageElement(str(-60 * 10**7), ldb.FLAG_MOD_REPLACE, "lockoutDuration")
msg["lockOutObservationWindow"] = ldb.MessageElement(
    str(-60 * 10**7), ldb.FLAG_MOD_REPLACE, "lockOutObservationWindow"
)
db.modify(msg)

for ou in ("Portal", "Groups"):
    db.create_ou(f"OU={ou},{base}")

PEOPLE = [
    # sAMAccountName, password, given name, surname, mail, userPrincipalName (None: name@soc.test)
    ("svc-portal", "Svc-Portal-Pass-1!", "Portal", "Service", "svc-portal@soc.test", None),
    ("alice", "Alice-Pass-1!", "Alice", "Anders", "alice@acme.example", None),
    ("nina", "Nina-Pass-1!", "Nina", "Nested", "nina@acme.example", None),
    ("ursula", "Ursula-Pass-1!", "Ursula", "Smith", "ursula@acme.example", "u.smith@soc.test"),
    ("dora", "Dora-Pass-1!", "Dora", "Disabled", "dora@acme.example", None),
    ("mike", "Mike-Pass-1!", "Mike", "Mustchange", "mike@acme.example", None),
    ("eve", "Eve-Pass-1!", "Eve", "Expired", "eve@acme.example", None),
    ("larry", "Larry-Pass-1!", "Larry", "Locked", "larry@acme.example", None),
    ("bob", "Bob-Pass-1!", "Bob", "Brown", "bob@globex.example", None),
    ("carol", "Carol-Pass-1!", "Carol", "Chen", "carol@unmapped.example", None),
    ("adam", "Adam-Pass-1!", "Adam", "Admin", "adam@soc.test", None),
    ("rita", "Rita-Pass-1!", "Rita", "Reader", "rita@soc.test", None),
    ("sam", "Sam-Pass-1!", "Sam", "Super", "sam@soc.test", None),
]
for name, password, given, surname, mail, upn in PEOPLE:
    db.newuser(
        name,
        password,
        useusernameascn=True,
        userou="OU=Portal",
        givenname=given,
        surname=surname,
        mailaddress=mail,
        force_password_change_at_next_login_req=name == "mike",
    )
    if upn:
        msg = ldb.Message(ldb.Dn(db, f"CN={name},OU=Portal,{base}"))
        msg["userPrincipalName"] = ldb.MessageElement(upn, ldb.FLAG_MOD_REPLACE, "userPrincipalName")
        db.modify(msg)
db.disable_account("(sAMAccountName=dora)")
db.setexpiry("(sAMAccountName=eve)", 0)
db.newcomputer("WKS01", computerou="OU=Portal")

GROUPS = [
    ("acme-soc-users", "Acme Corp portal users", ["alice", "ursula", "dora", "mike", "eve", "larry"]),
    ("acme-team-red", "Acme red team (nested in acme-soc-users)", ["nina"]),
    ("acme-soc-admins", "Acme Corp portal administrators", []),
    ("globex-soc-users", "Globex portal users", ["bob"]),
    ("unmapped-staff", "Staff with no portal mapping", ["carol"]),
    ("soc-admins", "SOC Portal administrators", []),
    ("soc-admin-team", "SOC analysts (nested in soc-admins)", ["adam"]),
    ("soc-read-only-admins", "SOC Portal read-only administrators", ["rita"]),
    ("soc-super-admins", "SOC Portal super administrators", ["sam"]),
]
for name, description, _ in GROUPS:
    db.newgroup(name, groupou="OU=Groups", description=description)
for name, _, members in GROUPS:
    if members:
        db.add_remove_group_members(name, members)
db.add_remove_group_members("acme-soc-users", ["acme-team-red"])
db.add_remove_group_members("soc-admins", ["soc-admin-team"])
