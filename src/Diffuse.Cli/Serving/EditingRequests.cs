using System.Text.Json;
using System.Text.Json.Serialization;
using Diffuse.Cli.Commands;
using Diffuse.Editing;
using Diffuse.Imaging;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// The fields every editing request shares, named like the flags of the editing commands (<c>diffuse encode</c>,
/// <c>decode</c>, <c>edit</c>, <c>inpaint</c>, <c>interpolate</c>), so that a request and the command with the same
/// options give the same bytes: the request builds the command's settings and runs the command's own plan
/// (<see cref="EncodePlan"/>, <see cref="DecodePlan"/>, <see cref="EditPlan"/>, <see cref="InpaintPlan"/>,
/// <see cref="InterpolatePlan"/>). Images come as base64 PNG (or JPEG) files in the JSON body, never as paths.
/// </summary>
public abstract class EditingRequest : RequestFields
{
    /// <summary>The fields of this request, for the message of a malformed body.</summary>
    internal abstract string Fields { get; }

    /// <summary>
    /// Checks the request against the model and the server's limits, decodes its inputs, and returns the work to run on
    /// the model's worker. The caller's dispose scope holds the tensors made here; the work's inputs are detached from it.
    /// </summary>
    /// <exception cref="ApiException">An input is missing, malformed, invalid or over a limit (400).</exception>
    /// <exception cref="DiffuseException">An option is invalid (the server answers 400 in the request's words).</exception>
    internal abstract EditingWork Prepare(ServedModel served, ServeOptions limits);

    /// <summary>The shared options as the editing commands' settings take them.</summary>
    private protected EditingChoices Choices(ServedModel served, bool resize, ulong seed) =>
        new(served.Name, SampleRequest.ClassText(Class), Guidance, resize, Sampler, Steps, Sigmas, Spacing, Eta, Variance, Clip, seed);

    /// <summary>Refuses a plan over the server's cap of network evaluations per image.</summary>
    private protected static void CheckCost(long evaluations, ServeOptions limits)
    {
        if (evaluations > limits.MaxEvaluations)
            throw ApiException.Invalid($"this request costs {evaluations} network evaluations per image, over this server's limit of {limits.MaxEvaluations}; ask for fewer 'steps'.");
    }

    /// <summary>The response format: <paramref name="given"/> (or the first of <paramref name="formats"/>), one of them.</summary>
    private protected static string CheckFormat(string? given, params string[] formats)
    {
        string format = (given ?? formats[0]).Trim().ToLowerInvariant();
        if (!formats.Contains(format)) throw ApiException.Invalid($"'format' must be one of {string.Join(", ", formats)} here (got '{given}').");
        return format;
    }

    /// <summary>Decodes the base64 images of <paramref name="field"/> for the model (model-range floats [N, C, H, W], owned by the caller).</summary>
    private protected static Tensor DecodeImages(string[]? images, string field, ServedModel served, bool resize, ServeOptions limits)
    {
        if (images is null || images.Length == 0)
            throw ApiException.Invalid($"'{field}' is required: an array of images, each a PNG or JPEG file in base64.");
        if (images.Length > limits.MaxImages)
            throw ApiException.Invalid($"'{field}' holds {images.Length} images, over this server's limit of {limits.MaxImages} images per request.");
        var inputs = images.Select((text, i) =>
        {
            string name = $"{field}[{i}]";
            byte[] bytes = Base64(text, name);
            return new ImageInput($"'{name}'", (w, h, grey) => ImageFolderReader.ReadBytes(bytes, name, w, h, grey));
        }).ToArray();
        return EditingIo.Decode(inputs, served.Model, resize);
    }

    /// <summary>The bytes of a base64 field.</summary>
    private protected static byte[] Base64(string? text, string field)
    {
        if (string.IsNullOrEmpty(text)) throw ApiException.Invalid($"'{field}' is empty: give a file's bytes in base64.");
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw ApiException.Invalid($"'{field}' is not valid base64: give a file's bytes in base64 (RFC 4648, with padding).");
        }
    }

    /// <summary>Names of the request's images in a png response (as the command names the files of a folder).</summary>
    private protected static string[] Names(long count) => Enumerable.Range(0, (int)count).Select(i => $"{i:D5}").ToArray();
}

/// <summary>An editing request that takes images.</summary>
public abstract class ImagesRequest : EditingRequest
{
    /// <summary>The images, PNG or JPEG files in base64.</summary>
    public string[]? Images { get; init; }

    /// <summary>Fit images of another size or channel count (as --resize).</summary>
    public bool Resize { get; init; }
}

/// <summary>An editing request that changes images with fresh noise (edit, inpaint), into a grid or one PNG each.</summary>
public abstract class ImageChangeRequest : ImagesRequest
{
    /// <summary>Seed (as --seed).</summary>
    public ulong? Seed { get; init; }

    /// <summary>grid (default, as --out grid.png: the sources above the results) or png (one PNG per result, as --out folder).</summary>
    public string? Format { get; init; }
}

/// <summary>The body of <c>POST /v1/models/{name}/encode</c>: images to latents, as <c>diffuse encode</c>.</summary>
public sealed class EncodeRequest : ImagesRequest
{
    internal override string Fields => "images, resize, class, guidance, sampler, steps, sigmas, spacing, eta, clip, stream";

    internal override EditingWork Prepare(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        var plan = EncodePlan.For(new EncodeSettings(Choices(served, Resize, 0)), model);
        CheckCost(plan.Evaluations(model), limits);
        var images = DecodeImages(Images, "images", served, Resize, limits);
        return new EditingWork(run =>
        {
            var (latents, info) = plan.Run(model, served.Name, images, null, run);
            var bytes = ResultEncoding.ThroughTemporaryFile(path => LatentFile.Save(path, latents, info));
            return new EncodedResult(bytes, "application/octet-stream", $"{served.Name}-latents.safetensors");
        }, images);
    }
}

/// <summary>The body of <c>POST /v1/models/{name}/decode</c>: latents to images, as <c>diffuse decode</c> (with 'class', a class edit).</summary>
public sealed class DecodeRequest : EditingRequest
{
    /// <summary>A latent file written by the encode route or <c>diffuse encode</c> with the same model, in base64.</summary>
    public string? Latents { get; init; }

    /// <summary>grid (default, as --out grid.png) or png (one PNG per image, as --out folder).</summary>
    public string? Format { get; init; }

    internal override string Fields => "latents, class, guidance, clip, format, stream";

    internal override EditingWork Prepare(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        var settings = new DecodeSettings(Choices(served, false, 0));
        DecodePlan.CheckSampler(settings);
        string format = CheckFormat(Format, "grid", "png");
        var (latents, info) = Load(Base64(Latents ?? throw ApiException.Invalid("'latents' is required: a latent file written by the encode route (or 'diffuse encode') in base64."), "latents"));
        if (latents.shape[0] > limits.MaxImages)
            throw ApiException.Invalid($"'latents' holds {latents.shape[0]} latents, over this server's limit of {limits.MaxImages} images per request.");
        var plan = DecodePlan.For(settings, model, latents, info);
        CheckCost(plan.Evaluations(model), limits);
        return new EditingWork(run => ResultEncoding.Of(plan.Run(model, latents, format == "grid", run), served.Name, "decoded"), latents);
    }

    /// <summary>Reads a latent file from its bytes, through a private temporary file whose path no message shows.</summary>
    private static (Tensor Latents, LatentInfo Info) Load(byte[] bytes)
    {
        (Tensor, LatentInfo)? loaded = null;
        ResultEncoding.ThroughTemporaryFile(path =>
        {
            File.WriteAllBytes(path, bytes);
            try
            {
                loaded = LatentFile.Load(path);
            }
            catch (DiffuseException e)
            {
                throw ApiException.Invalid(e.Message.Replace($"'{path}'", "'latents'").Replace(path, "'latents'"));
            }
        });
        return loaded!.Value;
    }
}

/// <summary>The body of <c>POST /v1/models/{name}/edit</c>: SDEdit image-to-image, as <c>diffuse edit</c>.</summary>
public sealed class EditRequest : ImageChangeRequest
{
    /// <summary>How far towards pure noise, in (0, 1] (as --strength, default 0.5).</summary>
    public double? Strength { get; init; }

    internal override string Fields => "images, resize, strength, seed, class, guidance, sampler, steps, sigmas, spacing, eta, variance, clip, format, stream";

    internal override EditingWork Prepare(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        var settings = new EditSettings(Choices(served, Resize, Seed ?? 0)) { Strength = Strength ?? new EditSettings().Strength };
        var plan = EditPlan.For(settings, model);
        CheckCost(plan.Evaluations(model), limits);
        string format = CheckFormat(Format, "grid", "png");
        var images = DecodeImages(Images, "images", served, Resize, limits);
        return new EditingWork(run => ResultEncoding.Of(plan.Run(model, images, null, Names(images.shape[0]), format == "grid", run), served.Name, "edited"), images);
    }
}

/// <summary>The body of <c>POST /v1/models/{name}/inpaint</c>: fill a masked region, as <c>diffuse inpaint</c>.</summary>
public sealed class InpaintRequest : ImageChangeRequest
{
    /// <summary>A PNG of the images' size in base64, white keep, black fill (as --mask).</summary>
    public string? Mask { get; init; }

    /// <summary>The rectangle to fill, "x,y,w,h" (as --mask-rect).</summary>
    public string? MaskRect { get; init; }

    /// <summary>RePaint's runs of every block (as --resample, default 1: the replacement method).</summary>
    public int? Resample { get; init; }

    /// <summary>RePaint's steps per block (as --jump, default 10).</summary>
    public int? Jump { get; init; }

    internal override string Fields => "images, resize, mask, maskRect, resample, jump, seed, class, guidance, sampler, steps, sigmas, spacing, eta, variance, clip, format, stream";

    internal override EditingWork Prepare(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        var defaults = new InpaintSettings();
        var settings = new InpaintSettings(Choices(served, Resize, Seed ?? 0)) { Resample = Resample ?? defaults.Resample, Jump = Jump ?? defaults.Jump };
        var plan = InpaintPlan.For(settings, model);
        CheckCost(plan.Evaluations(model), limits);
        string format = CheckFormat(Format, "grid", "png");
        ImageInput? maskImage = null;
        if (Mask is not null)
        {
            byte[] bytes = Base64(Mask, "mask");
            maskImage = new ImageInput("the mask", (w, h, grey) => ImageFolderReader.ReadBytes(bytes, "mask", w, h, grey));
        }
        var mask = EditingIo.Mask(maskImage, MaskRect, model);
        var images = DecodeImages(Images, "images", served, Resize, limits);
        return new EditingWork(run => ResultEncoding.Of(plan.Run(model, images, mask, Names(images.shape[0]), format == "grid", run), served.Name, "inpainted"), mask, images);
    }
}

/// <summary>The body of <c>POST /v1/models/{name}/interpolate</c>: frames between two images or two seeds, as <c>diffuse interpolate</c>.</summary>
public sealed class InterpolateRequest : ImagesRequest
{
    /// <summary>Two seeds: the path between the initial noise of sample 0 of each (as --seeds).</summary>
    public ulong[]? Seeds { get; init; }

    /// <summary>Points on the path, both ends included (as --frames, default 9).</summary>
    public int? Frames { get; init; }

    /// <summary>The straight line instead of the great circle (as --linear).</summary>
    public bool Linear { get; init; }

    /// <summary>grid (default: the frames side by side, as --out strip.png) or gif (there and back, as --out anim.gif).</summary>
    public string? Format { get; init; }

    internal override string Fields => "images, seeds, resize, frames, linear, class, guidance, sampler, steps, sigmas, spacing, eta, clip, format, stream";

    internal override EditingWork Prepare(ServedModel served, ServeOptions limits)
    {
        var model = served.Model;
        var settings = new InterpolateSettings(Choices(served, Resize, 0))
        {
            Images = Images is null ? null : string.Join(",", Images.Select((_, i) => $"images[{i}]")),
            Seeds = Seeds is null ? null : string.Join(",", Seeds),
            Frames = Frames ?? new InterpolateSettings().Frames,
            Linear = Linear,
        };
        var plan = InterpolatePlan.For(settings, model);
        if (plan.Frames > limits.MaxImages) throw ApiException.Invalid($"'frames' {plan.Frames} is over this server's limit of {limits.MaxImages} images per request.");
        CheckCost(plan.Evaluations(model), limits);
        string format = CheckFormat(Format, "grid", "gif");
        var images = Images is null ? null : DecodeImages(Images, "images", served, Resize, limits);
        return new EditingWork(run => ResultEncoding.Of(plan.Run(model, images, format == "gif", run), served.Name, "interpolation"), images);
    }
}
