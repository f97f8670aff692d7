using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffuse.Cli.Commands;
using Diffuse.Sampling;

namespace Diffuse.Cli.Serving;

/// <summary>
/// The body of <c>POST /v1/models/{name}/samples</c>: the options of <c>diffuse sample</c>, named like its flags, so that
/// a request and the command with the same options give the same bytes. Every field is optional.
/// </summary>
public sealed class SampleRequest : RequestFields
{
    /// <summary>Number of samples (as --count).</summary>
    public int? Count { get; init; }

    /// <summary>Budget of network evaluations per sample (as --nfe).</summary>
    public int? Nfe { get; init; }

    /// <summary>Seed (as --seed).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Images: grid (default), png or safetensors; tables: csv (default), scatter, json or safetensors.</summary>
    public string? Format { get; init; }

    /// <summary>Images: pixels per image pixel in a grid, 1 to 16 (as --scale).</summary>
    public int? Scale { get; init; }

    /// <summary>With <see cref="RequestFields.Stream"/>: each step also carries z_t and the model's x̂0 as small PNG grids.</summary>
    public bool Preview { get; init; }

    /// <summary>How request bodies are read: camelCase names, unknown fields refused, numbers strictly.</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
        MaxDepth = 8,
    };

    /// <summary>The formats of image models.</summary>
    public static IReadOnlyList<string> ImageFormats { get; } = new[] { "grid", "png", "safetensors" };

    /// <summary>The formats of table models.</summary>
    public static IReadOnlyList<string> TableFormats { get; } = new[] { "csv", "scatter", "json", "safetensors" };

    /// <summary>Checks the request against <paramref name="model"/> and the server's limits and resolves it into what is drawn.</summary>
    /// <exception cref="ApiException">An option is invalid or over a limit (400).</exception>
    internal SampleSpec Resolve(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        try
        {
            string format = (Format ?? (model.IsImage ? "grid" : "csv")).Trim().ToLowerInvariant();
            var formats = model.IsImage ? ImageFormats : TableFormats;
            if (!formats.Contains(format))
                throw ApiException.Invalid($"'format' must be one of {string.Join(", ", formats)} for {(model.IsImage ? "an image" : "a table")} model (got '{Format}').");
            if (Count is < 1) throw ApiException.Invalid($"'count' must be at least 1 (got {Count}).");
            if (Preview && !Stream) throw ApiException.Invalid("'preview' applies to streamed requests: set 'stream' to true too.");
            int limit = model.IsImage ? limits.MaxImages : limits.MaxRows;
            if (Count > limit) throw ApiException.Invalid($"'count' {Count} is over this server's limit of {limit} {(model.IsImage ? "images" : "rows")} per request.");
            var settings = new SampleSettings
            {
                Sampler = Sampler, Steps = Steps, Nfe = Nfe, Sigmas = Sigmas, Spacing = Spacing, Eta = Eta,
                Variance = Variance ?? "small", Clip = Clip, Seed = Seed ?? 0,
            };
            long? only = null;
            string? classText = ClassText(Class);
            if (!model.IsImage)
            {
                foreach (var (given, name) in new[] { (classText is not null, "class"), (Guidance is not null, "guidance"), (Scale is not null, "scale") })
                    if (given) throw ApiException.Invalid($"'{name}' applies to image models; {served.Name} was trained on a table.");
            }
            else
            {
                if (model.ClassCount == 0 && (classText is not null || Guidance is not null))
                    throw ApiException.Invalid($"'{(classText is not null ? "class" : "guidance")}' needs a class-conditional model; {served.Name} was trained without classes.");
                if (classText is not null) only = SampleCommand.ParseClass(classText, model);
                if (Scale is < 1 or > 16) throw ApiException.Invalid($"'scale' must be 1 to 16 (got {Scale}).");
            }
            var (options, description) = settings.ResolveSampler(model, served.Folder, imageDefault: true);
            int evaluations = options.FunctionEvaluations(model.Schedule);
            if (evaluations > limits.MaxEvaluations)
                throw ApiException.Invalid($"{description} costs {evaluations} network evaluations per sample, over this server's limit of {limits.MaxEvaluations}; ask for fewer 'steps' or an 'nfe' budget.");
            ulong seed = Seed ?? 0;
            if (!model.IsImage)
                return new SampleSpec(Count ?? 1000, seed, options, description, null, SamplingDefaults.Guidance, 0, null, format, 1, Stream, Preview);
            var plan = ImageSamplePlan.For(model, Count, only);
            if (plan.Count > limit) throw ApiException.Invalid($"{plan.Count} images is over this server's limit of {limit} images per request; give a smaller 'count'.");
            return new SampleSpec(plan.Count, seed, options, description, plan.Labels?.ToArray(), Guidance ?? SamplingDefaults.Guidance, plan.Columns,
                plan.RowLabels, format, Scale ?? Pictures.DefaultScale((int)model.ExampleShape[1]), Stream, Preview);
        }
        catch (DiffuseException e)
        {
            throw ApiException.From(e);
        }
    }

    /// <summary>The field 'class' as text (a number or a name), or null.</summary>
    internal static string? ClassText(JsonElement? value) => value switch
    {
        null => null,
        { ValueKind: JsonValueKind.Null } => null,
        { ValueKind: JsonValueKind.String } c => c.GetString(),
        { ValueKind: JsonValueKind.Number } c when c.TryGetInt64(out long k) => k < 0
            ? throw ApiException.Invalid($"'class' must be a class number 0 … K − 1 or a class name (got {k}).")
            : k.ToString(CultureInfo.InvariantCulture),
        var c => throw ApiException.Invalid($"'class' must be a class number or a class name (got {c.Value.GetRawText()})."),
    };
}

/// <summary>
/// The fields that sample and editing requests share: the class, guidance and sampler options, named like the flags of
/// the commands, and whether to stream progress.
/// </summary>
public abstract class RequestFields
{
    /// <summary>A class number or name (as --class).</summary>
    [JsonPropertyName("class")]
    public JsonElement? Class { get; init; }

    /// <summary>Classifier-free guidance scale (as --guidance).</summary>
    public double? Guidance { get; init; }

    /// <summary>Sampler name (as --sampler).</summary>
    public string? Sampler { get; init; }

    /// <summary>Steps (as --steps).</summary>
    public int? Steps { get; init; }

    /// <summary>Noise levels: a spacing name or a list (as --sigmas).</summary>
    public string? Sigmas { get; init; }

    /// <summary>Spacing of the steps: trailing, leading, linspace, karras or logsnr (as --spacing).</summary>
    public string? Spacing { get; init; }

    /// <summary>DDIM η (as --eta).</summary>
    public double? Eta { get; init; }

    /// <summary>DDPM variance, small or large (as --variance).</summary>
    public string? Variance { get; init; }

    /// <summary>Clamp of the x0 estimate (as --clip).</summary>
    public double? Clip { get; init; }

    /// <summary>Progress as server-sent events (text/event-stream) ending with the result.</summary>
    public bool Stream { get; init; }
}

/// <summary>A checked request: what to draw, how, and how to send it back.</summary>
/// <param name="Count">Samples.</param>
/// <param name="Seed">Seed: sample i depends only on (seed, i).</param>
/// <param name="Options">The resolved sampler.</param>
/// <param name="Description">The sampler as <c>diffuse sample</c> describes it.</param>
/// <param name="Labels">The class of each sample, or null.</param>
/// <param name="Guidance">Classifier-free guidance scale.</param>
/// <param name="Columns">Images per grid row.</param>
/// <param name="RowLabels">Labels of the grid's rows, or null.</param>
/// <param name="Format">The response format.</param>
/// <param name="Scale">Pixels per image pixel in a grid.</param>
/// <param name="Stream">Progress as server-sent events.</param>
/// <param name="Preview">Progress events carry z_t and x̂0 pictures.</param>
internal sealed record SampleSpec(int Count, ulong Seed, SamplerOptions Options, string Description, long[]? Labels, double Guidance, int Columns,
    IReadOnlyList<string>? RowLabels, string Format, int Scale, bool Stream, bool Preview);
