using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse decode</c>.</summary>
public sealed class DecodeSettings : EditingSettings
{
    /// <summary>Latents.</summary>
    [CommandOption("--latents <FILE>")]
    [Description("A latent file written by 'diffuse encode' with the same model.")]
    public string? Latents { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <PATH>")]
    [Description("A .png grid, or a folder for one PNG per image.")]
    public string? Out { get; init; }
}

/// <summary><c>diffuse decode</c>: latents back to images, with the encoding's class or another (a class edit).</summary>
public sealed class DecodeCommand : Command<DecodeSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, DecodeSettings settings, CancellationToken cancellationToken)
    {
        EditingIo.CheckOut(settings.Out);
        if (string.IsNullOrWhiteSpace(settings.Latents)) throw new DiffuseException("--latents is required: a file written by 'diffuse encode'.");
        if (settings.ChoosesSampler || settings.Nfe is not null)
            throw new DiffuseException("decode runs the sampler and levels recorded in the latent file; --sampler, --steps and the other sampler options do not apply.");
        var (model, _) = settings.LoadModel("decode");
        using (model)
        {
            using var scope = NewDisposeScope();
            var (latents, info) = LatentFile.Load(settings.Latents);
            LatentFile.CheckModel(info, model, settings.Model!);
            long? only = settings.ClassFor(model);
            double guidance = settings.Guidance ?? info.Guidance;
            int count = (int)latents.shape[0];
            var classes = only is { } k ? Enumerable.Repeat(k, count).ToArray() : info.Classes;
            var options = new SamplerOptions(SamplerNames.Parse(info.Sampler), SigmaList: info.Sigmas, ClipX0: settings.Clip);
            CliContext.Out.WriteLine($"decoding {count} latents ({LatentFile.Describe(info)}){(only is { } c ? $" as class {c} ({model.ClassNames[(int)c]}), guidance {guidance:0.##}" : "")}");
            var images = EditingIo.WithProgress("decode", EditingIo.Total(info.Steps, count), cancellationToken, (report, token) =>
                model.Decode(latents, options, model.ClassCount == 0 ? null : classes, guidance, report, cancellationToken: token));
            var names = Enumerable.Range(0, count).Select(i => classes[i] >= 0 ? $"{i:D5}-class{classes[i]}" : $"{i:D5}").ToArray();
            EditingIo.Write(settings.Out!, images, names, (int)Math.Ceiling(Math.Sqrt(count)));
        }
        return 0;
    }
}
