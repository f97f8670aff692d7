namespace Diffuse.Cli.Serving;

/// <summary>The limits and settings of <c>diffuse serve</c>; every default is defined here once.</summary>
/// <param name="Host">The address to listen on (loopback by default).</param>
/// <param name="Port">The port (0: any free port).</param>
/// <param name="ApiKey">The key every API request must carry (X-Api-Key or Authorization: Bearer), or null.</param>
/// <param name="NoAuth">Serve a non-loopback address without a key, explicitly.</param>
/// <param name="MaxImages">The most images one request may ask for.</param>
/// <param name="MaxRows">The most table rows one request may ask for.</param>
/// <param name="MaxEvaluations">The most network evaluations per sample one request may ask for.</param>
/// <param name="QueueLimit">The most requests waiting per model; more are refused with 429 and Retry-After.</param>
/// <param name="MaxBatch">The most samples running at once, whose rows one network evaluation carries (a single larger request still runs, alone).</param>
/// <param name="Batching">Whether running requests share network evaluations, whatever their settings (off: one request at a time).</param>
/// <param name="MaxBodyBytes">The largest request body accepted (of the editing routes: <paramref name="MaxEditBodyBytes"/>).</param>
/// <param name="MaxEditBodyBytes">The largest body of an editing request (encode, decode, edit, inpaint, interpolate), which carries images.</param>
/// <param name="ShutdownGrace">How long running requests may take to finish when the server stops.</param>
public sealed record ServeOptions(
    string Host = ServeOptions.DefaultHost,
    int Port = ServeOptions.DefaultPort,
    string? ApiKey = null,
    bool NoAuth = false,
    int MaxImages = 256,
    int MaxRows = 100_000,
    int MaxEvaluations = 1_000,
    int QueueLimit = 256,
    int MaxBatch = 256,
    bool Batching = true,
    long MaxBodyBytes = 64 * 1024,
    long MaxEditBodyBytes = 4 * 1024 * 1024,
    TimeSpan? ShutdownGrace = null)
{
    /// <summary>The default address: loopback only.</summary>
    public const string DefaultHost = "127.0.0.1";

    /// <summary>The default port.</summary>
    public const int DefaultPort = 8080;

    /// <summary>How long running requests may take to finish when the server stops (default 30 s).</summary>
    public TimeSpan Grace => ShutdownGrace ?? TimeSpan.FromSeconds(30);

    /// <summary>Whether <see cref="Host"/> is a loopback address (127.0.0.0/8, ::1 or localhost).</summary>
    public bool IsLoopback => Host == "localhost" || System.Net.IPAddress.TryParse(Host, out var ip) && System.Net.IPAddress.IsLoopback(ip);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Host != "localhost" && !System.Net.IPAddress.TryParse(Host, out _))
            throw new DiffuseException($"--host must be an IP address such as 127.0.0.1, 0.0.0.0 or ::1, or localhost (got '{Host}').");
        if (Port is < 0 or > 65535) throw new DiffuseException($"--port must be 0 to 65535 (got {Port}).");
        if (ApiKey is { } key && key.Length < 16) throw new DiffuseException("--api-key must be at least 16 characters long.");
        if (ApiKey is not null && NoAuth) throw new DiffuseException("--api-key and --no-auth contradict each other: give one of them.");
        if (!IsLoopback && ApiKey is null && !NoAuth)
            throw new DiffuseException($"--host {Host} is reachable from other machines: give --api-key <KEY> (clients send it as X-Api-Key), or --no-auth to serve without one.");
        foreach (var (value, name) in new[] { (MaxImages, "--max-images"), (MaxRows, "--max-rows"), (MaxEvaluations, "--max-steps"), (QueueLimit, "--queue"), (MaxBatch, "--max-batch") })
            if (value < 1) throw new DiffuseException($"{name} must be at least 1 (got {value}).");
        if (MaxEditBodyBytes < 1) throw new DiffuseException($"--max-edit-body must be at least 1 (got {MaxEditBodyBytes}).");
    }
}
