// mailstack's Cloudflare Worker: serves each mail domain's MTA-STS policy (RFC 8461 §3.3) and its
// mail client autoconfiguration documents. config/worker.py prepends `const SITES = {...};`:
//   host -> {domain, paths: {lowercase path -> {type, body, template?, post?, filename?}}}
// Every document text comes from mailstack's Python builders; this script only picks one.

// Where a document names the user's address (autodiscover's LoginName, the Apple profile).
const ADDRESS = "%MAILSTACK_ADDRESS%";
// Only plain local parts are filled in: they contain nothing XML would need escaped, and anything
// else gets the document without an address, for which the client asks the user.
const LOCAL_PART = /^[A-Za-z0-9._%+-]{1,64}$/;

function addressIn(candidate, domain) {
  if (typeof candidate !== "string") return null;
  const at = candidate.lastIndexOf("@");
  if (at < 1) return null;
  const local = candidate.slice(0, at);
  const host = candidate.slice(at + 1).toLowerCase();
  return host === domain && LOCAL_PART.test(local) ? `${local}@${host}` : null;
}

function plain(status, text, extra = {}) {
  return new Response(text, { status, headers: { "content-type": "text/plain", ...extra } });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const site = SITES[url.hostname.toLowerCase()];
    // Microsoft spells the path /Autodiscover/Autodiscover.xml, clients vary: paths match without case.
    const doc = site && site.paths[url.pathname.toLowerCase()];
    if (!doc) return plain(404, "not found\n");
    const method = request.method;
    const allowed = doc.post ? ["GET", "HEAD", "POST"] : ["GET", "HEAD"];
    if (!allowed.includes(method)) return plain(405, "method not allowed\n", { allow: allowed.join(", ") });
    let address = null;
    if (doc.template !== undefined) {
      if (method === "POST") {
        // [MS-OXDSCLI] §2.2.3: the request names the account in <EMailAddress>.
        const match = /<EMailAddress>\s*([^<\s]+)\s*<\/EMailAddress>/i.exec(await request.text());
        address = addressIn(match && match[1], site.domain);
      } else {
        address = addressIn(url.searchParams.get("email") ?? url.searchParams.get("emailaddress"), site.domain);
      }
    }
    const body = address === null ? doc.body : doc.template.split(ADDRESS).join(address);
    const headers = { "content-type": doc.type };
    if (doc.filename) headers["content-disposition"] = `attachment; filename="${doc.filename}"`;
    return new Response(method === "HEAD" ? null : body, { headers });
  },
};
