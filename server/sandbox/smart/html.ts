/** Small helpers for the sandbox's server-rendered pages (escaping, an accessible page shell). */

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A complete HTML page: language, title, landmarks, readable contrast, the research-use notice. */
export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff}
header,main,footer{max-width:52rem;margin:0 auto;padding:0.75rem 1rem}
header{border-bottom:2px solid #00497a}
h1{font-size:1.5rem;margin:0.5rem 0}
fieldset{border:1px solid #767676;margin:1rem 0;padding:0.5rem 1rem}
legend{font-weight:600;padding:0 0.25rem}
label{display:block;padding:0.25rem 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:0.35rem 0.5rem;border-bottom:1px solid #ccc}
button{font:inherit;padding:0.5rem 1.25rem;margin-right:0.75rem;border:2px solid #00497a;border-radius:4px;background:#00497a;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#00497a}
button:focus-visible,input:focus-visible{outline:3px solid #c75000;outline-offset:2px}
.notice{background:#fff4e5;border-left:4px solid #c75000;padding:0.5rem 0.75rem}
.error{background:#fde8e8;border-left:4px solid #a30000;padding:0.5rem 0.75rem}
</style>
</head>
<body>
<header><p><strong>Fracture Risk CDS — sandbox authorization server</strong> (demo only)</p></header>
<main>
${body}
</main>
<footer><p class="notice">Research use — trained on synthetic data. Demo users and synthetic patients only.</p></footer>
</body>
</html>`;
}
