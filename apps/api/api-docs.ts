// GET /docs/: interactive API documentation, Swagger UI served from the swagger-ui-dist package
// (no CDN, so it works where the service's network reaches nothing else) over /openapi.json. Public,
// as the document is. Only the files the page needs are served, never the rest of the package.
import path from 'node:path';
import { Router, type Response } from 'express';

export const apiDocsPath = '/docs';
const swaggerUiDirectory = path.dirname(require.resolve('swagger-ui-dist/package.json'));
/** The package's files the page loads; anything else under /docs/ is the API's 404. */
const assets: ReadonlyMap<string, string> = new Map([
  ['swagger-ui.css', 'text/css; charset=utf-8'],
  ['swagger-ui-bundle.js', 'text/javascript; charset=utf-8'],
  ['favicon-32x32.png', 'image/png'],
]);
/** Scripts and styles from this path only (Swagger UI sets inline styles; its logos are data: URLs). */
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";
const assetMaxAgeSeconds = 3600;

// Relative URLs throughout, so a path prefix in front of the service keeps working.
const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Stockhold API</title>
<link rel="stylesheet" href="swagger-ui.css">
<link rel="icon" type="image/png" href="favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="init.js"></script>
</body>
</html>
`;
const initializer = `window.ui = SwaggerUIBundle({ url: '../openapi.json', dom_id: '#swagger-ui', deepLinking: true, displayOperationId: true });\n`;

function sendText(response: Response, type: string, body: string): void {
  response.setHeader('Content-Type', type);
  response.setHeader('Content-Security-Policy', contentSecurityPolicy);
  response.setHeader('X-Content-Type-Options', 'nosniff');
  response.setHeader('Cache-Control', 'no-cache');
  response.end(body);
}

export function apiDocs(): Router {
  const router = Router({ strict: true });
  router.get('/', (request, response) => {
    // The page's relative URLs need the trailing slash.
    if (!request.originalUrl.split('?')[0]!.endsWith('/')) {
      response.redirect(301, `${request.baseUrl}/`);
      return;
    }
    sendText(response, 'text/html; charset=utf-8', page);
  });
  router.get('/init.js', (_request, response) => sendText(response, 'text/javascript; charset=utf-8', initializer));
  router.get('/:asset', (request, response, next) => {
    const name = String(request.params.asset);
    const type = assets.get(name);
    if (type === undefined) {
      next();
      return;
    }
    response.setHeader('Content-Type', type);
    response.setHeader('X-Content-Type-Options', 'nosniff');
    response.setHeader('Cache-Control', `public, max-age=${assetMaxAgeSeconds}`);
    // A file missing from the package (a broken install) is the API's 404, not an error.
    response.sendFile(path.join(swaggerUiDirectory, name), (error) => {
      if (error !== undefined && !response.headersSent) next();
    });
  });
  return router;
}
