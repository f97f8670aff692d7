using System.Net;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// The HTTP server of <c>diffuse serve</c> (ASP.NET Core's Kestrel): the JSON API under <c>/v1</c>, its OpenAPI
/// description at <c>/openapi.json</c> and the playground at <c>/</c>. Every refused request gets one JSON error
/// <c>{"error": {"code", "message"}}</c> with a 4xx status; nothing in a request names a file.
/// </summary>
public sealed partial class DiffuseServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IReadOnlyList<ServedModel> _models;
    private readonly ServeOptions _options;
    private readonly byte[]? _keyHash;
    private static readonly Dictionary<string, (byte[] Bytes, string Type)> Static = LoadStatic();

    /// <summary>Builds the server for <paramref name="models"/> (it does not own them) with <paramref name="options"/>.</summary>
    /// <exception cref="DiffuseException">An option is invalid (a non-loopback address without a key, say).</exception>
    public DiffuseServer(ServeOptions options, IReadOnlyList<ServedModel> models)
    {
        options.Validate();
        _options = options;
        _models = models;
        _keyHash = options.ApiKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = Array.Empty<string>(), ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.Grace);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            kestrel.Limits.MaxRequestLineSize = 8 * 1024;
            var address = options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Host);
            kestrel.Listen(address, options.Port);
        });
        _app = builder.Build();
        _app.Use(Guard);
        _app.UseRouting();
        _app.MapGet("/", context => SendStatic(context, "index.html"));
        foreach (string file in Static.Keys) _app.MapGet("/" + file, context => SendStatic(context, file));
        _app.MapGet("/healthz", () => Results.Json(new { status = "ok", models = _models.Select(m => m.Name) }));
        _app.MapGet("/v1/models", () => Results.Json(new { models = _models.Select(m => m.Info()) }));
        _app.MapGet("/v1/models/{name}", (string name) => Results.Json(Find(name).Info()));
        _app.MapGet("/v1/models/{name}/schedule", (string name) => Results.Json(Schedule(Find(name))));
        _app.MapGet("/v1/models/{name}/examples", (string name) => Results.Json(Find(name).Examples
            ?? throw new ApiException(404, "no_examples", $"the data set of '{name}' is not in this server's cache (only fashion-mnist and mnist test images are shown, and nothing is downloaded); the playground uses the model's own samples instead.")));
        _app.MapPost("/v1/models/{name}/samples", (HttpContext context, string name) => Sample(context, Find(name)));
        MapEditing();
        _app.MapFallback(context => throw new ApiException(404, "not_found", $"there is no {context.Request.Method} {context.Request.Path}; the API is described at /openapi.json."));
    }

    /// <summary>The address the server listens on, once started.</summary>
    public Uri? Address { get; private set; }

    /// <summary>Starts listening and returns the address (with the port chosen when 0 was given).</summary>
    /// <exception cref="DiffuseException">The address cannot be bound (the port is in use, say).</exception>
    public async Task<Uri> StartAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            throw new DiffuseException($"cannot listen on {_options.Host}:{_options.Port}: {e.Message.TrimEnd('.')}. Choose another --port (0 picks a free one).");
        }
        string address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Address = new Uri(address.Replace("[::]", "localhost").Replace("0.0.0.0", "localhost"));
        return Address;
    }

    /// <summary>
    /// Stops: no new connections, running requests get <see cref="ServeOptions.Grace"/> to finish and are then cancelled
    /// (each stops within one network evaluation), then the models' workers stop.
    /// </summary>
    public async Task StopAsync()
    {
        await _app.StopAsync();
        foreach (var model in _models) model.Scheduler.Dispose();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    /// <summary>Authentication of the API, and every refusal as one JSON error.</summary>
    private async Task Guard(HttpContext context, RequestDelegate next)
    {
        var response = context.Response;
        response.Headers.XContentTypeOptions = "nosniff";
        try
        {
            if (_keyHash is not null && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request))
                throw new ApiException(401, "unauthorized", "this server needs its API key: send it as the X-Api-Key header (or Authorization: Bearer <key>).");
            await next(context);
        }
        catch (Exception e) when (!response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            var error = e switch
            {
                ApiException api => api,
                DiffuseException diffuse => ApiException.From(diffuse),
                BadHttpRequestException bad => bad.StatusCode == 413 ? TooLarge(context) : new ApiException(bad.StatusCode, "bad_request", bad.Message),
                OperationCanceledException => new ApiException(503, "shutting_down", "the server stopped before this request ran; try again later."),
                _ => new ApiException(500, "internal_error", $"unexpected failure, a bug in Diffuse; please report it: {e.GetType().Name}: {e.Message}"),
            };
            response.Clear();
            response.StatusCode = error.Status;
            if (error.RetryAfterSeconds is { } seconds) response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await response.WriteAsJsonAsync(new { error = new { code = error.Code, message = error.Message } });
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its work has stopped.
        }
    }

    /// <summary>Compares the key in constant time (SHA-256 digests of equal length, <see cref="CryptographicOperations.FixedTimeEquals"/>).</summary>
    private bool Authorized(HttpRequest request)
    {
        string? given = request.Headers["X-Api-Key"].FirstOrDefault();
        string? authorization = request.Headers.Authorization.FirstOrDefault();
        if (given is null && authorization is { } a && a.StartsWith("Bearer ", StringComparison.Ordinal)) given = a["Bearer ".Length..].Trim();
        if (given is null) return false;
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), _keyHash);
    }

    private ServedModel Find(string name) =>
        _models.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ApiException(404, "unknown_model", $"there is no model '{Truncate(name)}' on this server; GET /v1/models lists them ({string.Join(", ", _models.Select(m => m.Name))}).");

    private static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "…";

    /// <summary>ᾱ at every trained timestep (index 0 is t = 1 … the last is t = T): the playground draws the forward process from it.</summary>
    private static object Schedule(ServedModel served)
    {
        var schedule = served.Model.Schedule;
        return new { timesteps = schedule.Timesteps, alphaBar = schedule.AlphaBars, kind = schedule.Kind.ToString().ToLowerInvariant() };
    }

    private async Task Sample(HttpContext context, ServedModel served)
    {
        var body = await ReadBody<SampleRequest>(context, "sample", "count, class, guidance, sampler, steps, nfe, sigmas, spacing, eta, variance, clip, seed, format, scale, stream, preview");
        var spec = body.Resolve(served, _options);
        if (spec.Stream)
        {
            await Stream(context, served, spec);
            return;
        }
        var job = new SampleJob(spec, context.RequestAborted, null);
        served.Scheduler.Enqueue(job);
        using var samples = await job.Result;
        var result = ResultEncoding.Encode(served, spec, samples);
        var response = context.Response;
        response.ContentType = result.ContentType;
        response.Headers.ContentDisposition = $"inline; filename=\"{result.FileName}\"";
        response.Headers["X-Diffuse-Sampler"] = Ascii(spec.Description);
        response.Headers["X-Diffuse-Batch"] = job.BatchRows.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await response.Body.WriteAsync(result.Bytes, context.RequestAborted);
    }

    /// <summary>A header value in ASCII (the sampler's description may hold Greek letters).</summary>
    private static string Ascii(string text) => new(text.Select(c => c < 128 && !char.IsControl(c) ? c : '?').ToArray());

    /// <summary>
    /// A request answered as server-sent events: <c>queued</c>, then <c>progress</c> after every step (with pictures of
    /// z_t and x̂0 when asked), then <c>result</c> with the bytes of the non-streamed answer in base64, or <c>error</c>.
    /// </summary>
    private static Task Stream(HttpContext context, ServedModel served, SampleSpec spec)
    {
        SampleJob? job = null;
        return Stream(context, served, progress =>
            {
                job = new SampleJob(spec, context.RequestAborted, progress);
                served.Scheduler.Enqueue(job);
                return job.Result;
            },
            new { waiting = served.Scheduler.Waiting, sampler = spec.Description, count = spec.Count },
            p => new { step = p.Step, steps = p.Steps, z = p.Z, x0 = p.X0 },
            async () =>
            {
                using var samples = await job!.Result;
                var result = ResultEncoding.Encode(served, spec, samples);
                return new { format = spec.Format, contentType = result.ContentType, fileName = result.FileName, sampler = spec.Description, batch = job.BatchRows, data = Convert.ToBase64String(result.Bytes) };
            });
    }

    /// <summary>
    /// The events of a streamed request: <paramref name="enqueue"/> queues its job with a progress callback and returns
    /// the job's completion; then <c>queued</c>, a <c>progress</c> event per step, and <c>result</c> or <c>error</c>.
    /// </summary>
    private static async Task Stream(HttpContext context, ServedModel served, Func<Action<JobProgress>, Task> enqueue, object queued,
        Func<JobProgress, object> progress, Func<Task<object>> result)
    {
        var events = Channel.CreateUnbounded<JobProgress>(new UnboundedChannelOptions { SingleReader = true });
        var done = enqueue(p => events.Writer.TryWrite(p));
        _ = done.ContinueWith(_ => events.Writer.TryComplete(), TaskScheduler.Default);
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var aborted = context.RequestAborted;
        await Send(response, "queued", queued, aborted);
        await foreach (var p in events.Reader.ReadAllAsync(aborted))
            await Send(response, "progress", progress(p), aborted);
        try
        {
            await Send(response, "result", await result(), aborted);
        }
        catch (Exception e) when (e is DiffuseException or ApiException)
        {
            var error = e as ApiException ?? ApiException.From((DiffuseException)e);
            await Send(response, "error", new { error = new { code = error.Code, message = error.Message } }, aborted);
        }
    }

    private static async Task Send(HttpResponse response, string name, object data, CancellationToken cancellationToken)
    {
        await response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static async Task SendStatic(HttpContext context, string file)
    {
        if (!Static.TryGetValue(file, out var content)) throw new ApiException(404, "not_found", $"there is no file '{Truncate(file)}'.");
        var response = context.Response;
        response.ContentType = content.Type;
        // Everything the page needs comes from this server: no CDN, no external fonts or scripts.
        response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
        await response.Body.WriteAsync(content.Bytes);
    }

    /// <summary>The playground's files and the OpenAPI description, embedded in the assembly.</summary>
    private static Dictionary<string, (byte[] Bytes, string Type)> LoadStatic()
    {
        const string prefix = "Diffuse.Cli.Serving.Static.";
        var assembly = Assembly.GetExecutingAssembly();
        var files = new Dictionary<string, (byte[], string)>();
        foreach (string resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            string name = resource[prefix.Length..];
            string type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".json" => "application/json",
                _ => "application/octet-stream",
            };
            files[name] = (memory.ToArray(), type);
        }
        return files;
    }
}
