using System.Security.Cryptography;
using Diffuse.Data.Images;
using static TorchSharp.torch;

namespace Diffuse.Training;

/// <summary>
/// A short digest of training data, recorded in the model's config: a resumed run checks that it is given the data it
/// was trained on, and every process of a data-parallel run that it read the same data as rank 0.
/// </summary>
public static class DataFingerprint
{
    /// <summary>The first 16 hex digits of the SHA-256 of the images' bytes, then (when labelled) their labels.</summary>
    /// <param name="images">The images.</param>
    public static string Of(ImageDataset images)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var scope = NewDisposeScope()) hash.AppendData(images.Images.contiguous().bytes);
        if (images.Labels is { } labels) hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(labels.AsSpan()));
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>The first 16 hex digits of the SHA-256 of the rows as float32.</summary>
    /// <param name="data">The rows, [N, D].</param>
    public static string Of(Tensor data)
    {
        using var scope = NewDisposeScope();
        var bytes = data.to_type(ScalarType.Float32).cpu().contiguous().bytes;
        return Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
    }
}
