using System.Text.RegularExpressions;

namespace Diffuse.Cli.Serving;

/// <summary>A request the server refuses: an HTTP status, a stable code and one clear message.</summary>
/// <param name="Status">The HTTP status (4xx for the client's errors).</param>
/// <param name="Code">A short machine-readable code, e.g. unknown_model.</param>
/// <param name="Message">What is wrong and what to do instead.</param>
public sealed class ApiException(int Status, string Code, string Message) : Exception(Message)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = Status;

    /// <summary>The machine-readable code.</summary>
    public string Code { get; } = Code;

    /// <summary>Seconds after which a refused request may be retried (429), or null.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>A 400 invalid_request error.</summary>
    public static ApiException Invalid(string message) => new(400, "invalid_request", message);

    /// <summary>
    /// A library or command error as an API error: the command's flags (--class) become the request's fields ('class'),
    /// since the fields are named like the flags.
    /// </summary>
    public static ApiException From(DiffuseException e) => Invalid(FieldNames(LibraryFlags.Message(e)));

    /// <summary>
    /// Replaces the flags of <c>diffuse sample</c> and the editing commands in <paramref name="message"/> by the request
    /// fields of the same name (--image is the field images, --mask-rect maskRect).
    /// </summary>
    public static string FieldNames(string message) => Flag.Replace(message, m => m.Groups[1].Value switch
    {
        "image" => "'images'",
        "mask-rect" => "'maskRect'",
        var field => $"'{field}'",
    });

    private static readonly Regex Flag = new(
        @"--(count|class|guidance|sampler|steps|nfe|sigmas|spacing|eta|variance|clip|seed|scale|rho|strength|resample|jump|frames|linear|resize|seeds|images|image|latents|mask-rect|mask)\b(?!-)",
        RegexOptions.CultureInvariant);
}
