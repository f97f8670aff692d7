using System.ComponentModel;
using Diffuse.Cli.Serving;
using Spectre.Console.Cli;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse serve</c>.</summary>
public sealed class ServeSettings : CommonSettings
{
    /// <summary>Models.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train', or a shipped model's name (fashion-mnist, emoji); repeat to serve several. Its folder's name names it in URLs.")]
    public string[] Models { get; init; } = Array.Empty<string>();

    /// <summary>Port.</summary>
    [CommandOption("--port <PORT>")]
    [Description("TCP port (default 8080; 0 picks a free one).")]
    public int Port { get; init; } = ServeOptions.DefaultPort;

    /// <summary>Host.</summary>
    [CommandOption("--host <ADDRESS>")]
    [Description("Address to listen on (default 127.0.0.1, this machine only). Any other address needs --api-key, or --no-auth explicitly.")]
    public string Host { get; init; } = ServeOptions.DefaultHost;

    /// <summary>API key.</summary>
    [CommandOption("--api-key <KEY>")]
    [Description("A key of at least 16 characters that every API request must send (X-Api-Key header, or Authorization: Bearer); default $DIFFUSE_API_KEY.")]
    public string? ApiKey { get; init; }

    /// <summary>No authentication.</summary>
    [CommandOption("--no-auth")]
    [Description("Serve a non-loopback address without an API key (anyone who reaches it can use the CPU).")]
    public bool NoAuth { get; init; }

    /// <summary>Image cap.</summary>
    [CommandOption("--max-images <N>")]
    [Description("Most images per request (default 256).")]
    public int? MaxImages { get; init; }

    /// <summary>Row cap.</summary>
    [CommandOption("--max-rows <N>")]
    [Description("Most table rows per request (default 100000).")]
    public int? MaxRows { get; init; }

    /// <summary>Step cap.</summary>
    [CommandOption("--max-steps <N>")]
    [Description("Most network evaluations per sample a request may ask for (default 1000).")]
    public int? MaxSteps { get; init; }

    /// <summary>Queue bound.</summary>
    [CommandOption("--queue <N>")]
    [Description("Most requests waiting per model; more get 429 with Retry-After (default 256).")]
    public int? Queue { get; init; }

    /// <summary>Batch bound.</summary>
    [CommandOption("--max-batch <N>")]
    [Description("Most samples running at once, sharing each network evaluation (default 256); a larger request runs alone.")]
    public int? MaxBatch { get; init; }

    /// <summary>Editing body cap.</summary>
    [CommandOption("--max-edit-body <BYTES>")]
    [Description("Largest body of an editing request (encode, decode, edit, inpaint, interpolate), which carries its images in base64 (default 4194304, 4 MiB; other requests: 64 KiB).")]
    public long? MaxEditBody { get; init; }

    /// <summary>Batching off.</summary>
    [CommandOption("--no-batching")]
    [Description("Serve one request at a time (no dynamic batching): the baseline of docs/benchmarks.md.")]
    public bool NoBatching { get; init; }
}

/// <summary><c>diffuse serve</c>: models behind an HTTP API with dynamic batching, and the playground.</summary>
public sealed class ServeCommand : Command<ServeSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, ServeSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Models.Length == 0) throw new DiffuseException("--model is required: a model folder or a shipped model's name (fashion-mnist); repeat it to serve several.");
        CliContext.RequireSingleProcess("serve");
        var defaults = new ServeOptions();
        var options = new ServeOptions(settings.Host, settings.Port, settings.ApiKey ?? NonEmpty(Environment.GetEnvironmentVariable("DIFFUSE_API_KEY")), settings.NoAuth,
            settings.MaxImages ?? defaults.MaxImages, settings.MaxRows ?? defaults.MaxRows, settings.MaxSteps ?? defaults.MaxEvaluations,
            settings.Queue ?? defaults.QueueLimit, settings.MaxBatch ?? defaults.MaxBatch, !settings.NoBatching, MaxEditBodyBytes: settings.MaxEditBody ?? defaults.MaxEditBodyBytes);
        options.Validate();
        settings.ApplyThreads(imageModel: true);
        var models = ServedModel.LoadAll(settings.Models, options, settings.TorchDevice());
        try
        {
            var server = new DiffuseServer(options, models);
            var address = server.StartAsync(cancellationToken).GetAwaiter().GetResult();
            string auth = options.ApiKey is not null ? "API key required (X-Api-Key)" : options.IsLoopback ? "no API key (loopback only)" : "no API key (--no-auth: open to the network)";
            CliContext.Out.WriteLine($"serving {string.Join(", ", models.Select(m => m.Name))} at {address} ({auth}, batching {(options.Batching ? "on" : "off")}); playground at /, API at /v1/models, OpenAPI at /openapi.json; Ctrl-C or SIGTERM stops");
            CliContext.Out.Flush();
            try
            {
                Task.Delay(Timeout.Infinite, cancellationToken).Wait(CancellationToken.None);
            }
            catch (AggregateException e) when (e.InnerException is TaskCanceledException)
            {
            }
            CliContext.Out.WriteLine($"stopping: running requests get {options.Grace.TotalSeconds:0} s to finish ...");
            server.StopAsync().GetAwaiter().GetResult();
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            CliContext.Out.WriteLine("stopped");
            return 0;
        }
        finally
        {
            foreach (var model in models) model.Dispose();
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
